// TLS as a byte layer: one connection's OpenSSL state over two memory BIOs,
// with no knowledge of sockets or frames.
//
//   socket bytes (ciphertext) -> feed() -> read() -> plaintext for the framing
//   plaintext from the framing -> write() -> out_data()/consume_out() -> socket
//
// The I/O loop (io_tls.cc) moves bytes between the socket and this layer; the
// framing above it (TCP frames, later WebSocket) sees plaintext only. OpenSSL
// is the copy the node binary exports (the addon links no libssl of its own);
// the native unit tests link the system's (CMakeLists.txt).
//
// Policy: TLS 1.2 and 1.3 only; TLS 1.2 suites are ECDHE with AES-GCM or
// ChaCha20-Poly1305; no renegotiation, no compression, no session cache.
#ifndef ZS_TLS_CONN_H
#define ZS_TLS_CONN_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace zs::tls {

// A server context: certificate chain and key as PEM text (the key may be
// encrypted with `passphrase`). A non-empty `ca` asks every client for a
// certificate and refuses one that does not verify against it. `alpn` is the
// protocols in preference order, in wire format (length-prefixed), or empty.
struct ServerConfig {
  std::string cert;
  std::string key;
  std::string passphrase;
  std::string ca;
  std::string alpn;
};

// A client context: `ca` (PEM) replaces the default trust store when given;
// `verify` false accepts any server certificate (tests, pinned elsewhere).
struct ClientConfig {
  std::string ca;
  bool verify = true;
  std::string alpn;
};

// New contexts, or null with OpenSSL's reason in *error. Free with SSL_CTX_free
// (ctx_free below, so callers need no OpenSSL header).
SSL_CTX* new_server_ctx(const ServerConfig& cfg, std::string* error);
SSL_CTX* new_client_ctx(const ClientConfig& cfg, std::string* error);
void ctx_up_ref(SSL_CTX* ctx);
void ctx_free(SSL_CTX* ctx);

enum class Status {
  kOk,        // progress (maybe zero bytes: more ciphertext is needed)
  kClosed,    // the peer sent close_notify
  kAuth,      // the peer's certificate did not verify, or the peer refused ours
  kProtocol,  // anything else TLS rejected (not TLS at all, bad record, version...)
};

class Conn {
 public:
  // Null when OpenSSL cannot allocate. `servername` (client only) is sent as
  // SNI (when not an IP address) and checked against the certificate when verifying.
  static Conn* create(SSL_CTX* ctx, bool server, const char* servername);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Ciphertext that arrived. False when OpenSSL cannot take it (out of memory).
  bool feed(const uint8_t* p, size_t n);
  // Up to cap bytes of plaintext into out (*got, maybe 0 when more ciphertext
  // is needed); drives the handshake as a side effect.
  Status read(uint8_t* out, size_t cap, size_t* got);
  // Encrypts p[0, n): *taken is n once the handshake is done, 0 before (the
  // caller keeps the bytes and tries again after a read finished it).
  Status write(const uint8_t* p, size_t n, size_t* taken);
  // Client: puts the ClientHello in the output.
  Status start();
  // Puts close_notify in the output (once).
  void close_notify();
  // Ciphertext waiting for the socket: a view of n bytes, then consume_out(sent).
  const uint8_t* out_data(size_t* n);
  void consume_out(size_t n);
  size_t out_pending() const;
  // Ciphertext fed and not yet decrypted, or plaintext decrypted and not yet read.
  bool has_input() const;
  bool established() const;
  // What went wrong, for the close detail (after kAuth or kProtocol).
  const std::string& error() const { return error_; }

 private:
  Conn() = default;
  Status fail(int ret);

  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // owned by ssl_
  BIO* wbio_ = nullptr;  // owned by ssl_
  std::vector<uint8_t> out_;
  size_t out_off_ = 0;
  bool shut_ = false;
  std::string error_;
};

}  // namespace zs::tls

#endif
