/**
 * A NativeTcpTransport that always listens and connects with TLS, with the
 * test certificate of test/fixtures/tls: for running the conformance and
 * framework suites over native TLS unchanged.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NativeTcpTransport, type NativeConnectOptions, type NativeListenOptions } from '../../lib/transport/native-tcp.js';
import type { Endpoint } from '../../lib/transport/types.js';

const dir = join(import.meta.dirname, '..', 'fixtures', 'tls');
const pem = (f: string) => readFileSync(join(dir, f), 'latin1');
export const CA = pem('ca.pem');
export const CERT = pem('server.pem');
export const KEY = pem('server.key');
export const OTHER = pem('other.pem');
export const serverTls = { cert: CERT, key: KEY };
export const clientTls = { ca: CA, servername: 'localhost' };

export class TlsTransport extends NativeTcpTransport {
  override listen(endpoint: Endpoint, options?: NativeListenOptions) {
    return super.listen(endpoint, { ...options, tls: { ...serverTls, ...options?.tls } });
  }
  override connect(endpoint: Endpoint, options?: NativeConnectOptions) {
    return super.connect(endpoint, { ...options, tls: { ...clientTls, ...options?.tls } });
  }
}
