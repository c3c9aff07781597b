// A bit writer for the hand-made DEFLATE streams of the compression tests.

/** LSB-first bit writer for hand-made DEFLATE streams; `code` writes a Huffman code MSB first. */
export class Bits {
  private bytes: number[] = [];
  private acc = 0;
  private n = 0;
  put(value: number, count: number): this {
    for (let i = 0; i < count; i++) this.bit((value >> i) & 1);
    return this;
  }
  code(value: number, count: number): this {
    for (let i = count - 1; i >= 0; i--) this.bit((value >> i) & 1);
    return this;
  }
  private bit(b: number): void {
    this.acc |= b << this.n;
    if (++this.n === 8) {
      this.bytes.push(this.acc);
      this.acc = 0;
      this.n = 0;
    }
  }
  done(): Buffer {
    return Buffer.from(this.n ? [...this.bytes, this.acc] : this.bytes);
  }
}
