// See tls_conn.h.
#include "tls_conn.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <new>

namespace zs::tls {

namespace {

// TLS 1.2 suites: forward secret and AEAD only (TLS 1.3's are all AEAD).
constexpr const char* kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Plaintext per SSL_write: 16 full records, so one big burst does not sit in
// the memory BIO as one big copy.
constexpr size_t kWriteChunk = 256 * 1024;

std::string last_error(const char* what) {
  std::string s = what;
  unsigned long e;
  bool first = true;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    s += first ? ": " : "; ";
    s += buf;
    first = false;
  }
  return s;
}

bool common_setup(SSL_CTX* ctx, const std::string& alpn, bool server, std::string* error) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Record buffers are kept for the connection's life (two of about 17 KiB):
  // SSL_MODE_RELEASE_BUFFERS would free and allocate them around every read
  // and write of a busy peer. docs/limits.md, "Native TLS", counts them.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (server) SSL_CTX_set_num_tickets(ctx, 0);
  // TLS 1.3: AES-128-GCM first (the fastest with AES-NI, and as strong as needed), the server's order wins.
  if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") != 1 ||
      SSL_CTX_set_cipher_list(ctx, kCiphers12) != 1) {
    *error = last_error("cannot set the TLS 1.2 cipher list");
    return false;
  }
  if (!alpn.empty() && !server &&
      SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(alpn.data()),
                              static_cast<unsigned>(alpn.size())) != 0) {
    *error = last_error("cannot set ALPN");
    return false;
  }
  return true;
}

// Adds every certificate of a PEM text to the context's trust store.
bool add_ca(SSL_CTX* ctx, const std::string& pem, std::string* error) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) {
    *error = last_error("out of memory");
    return false;
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, x);
    X509_free(x);
    added++;
  }
  BIO_free(bio);
  ERR_clear_error();  // the end of the text reads as an error
  if (!added) {
    *error = "ca: no PEM certificate found";
    return false;
  }
  return true;
}

// The server's ALPN choice: its own first protocol the client also offers;
// none in common leaves ALPN out of the handshake (it is optional).
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void* arg) {
  const auto* mine = static_cast<const std::string*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, reinterpret_cast<const unsigned char*>(mine->data()),
                            static_cast<unsigned>(mine->size()), in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

int alpn_index() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr,
      [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<std::string*>(ptr); });
  return index;
}

}  // namespace

SSL_CTX* new_server_ctx(const ServerConfig& cfg, std::string* error) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    *error = last_error("cannot create a TLS context");
    return nullptr;
  }
  bool ok = common_setup(ctx, cfg.alpn, true, error);
  if (ok) {
    BIO* bio = BIO_new_mem_buf(cfg.cert.data(), static_cast<int>(cfg.cert.size()));
    X509* leaf = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
    if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1) {
      *error = last_error("cert: not a PEM certificate");
      ok = false;
    } else {
      // The rest of the text is the chain, sent after the leaf.
      while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) X509_free(x);
      }
      ERR_clear_error();
    }
    X509_free(leaf);
    BIO_free(bio);
  }
  if (ok) {
    BIO* bio = BIO_new_mem_buf(cfg.key.data(), static_cast<int>(cfg.key.size()));
    EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, const_cast<char*>(cfg.passphrase.c_str()))
                        : nullptr;
    BIO_free(bio);
    if (!key) {
      *error = last_error("key: not a PEM private key (or a wrong passphrase)");
      ok = false;
    } else if (SSL_CTX_use_PrivateKey(ctx, key) != 1) {
      *error = last_error("key: does not match the certificate");
      ok = false;
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
      *error = last_error("key: does not match the certificate");
      ok = false;
    }
    EVP_PKEY_free(key);
  }
  if (ok && !cfg.ca.empty()) {
    ok = add_ca(ctx, cfg.ca, error);
    if (ok) SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (ok && !cfg.alpn.empty()) {
    auto* mine = new (std::nothrow) std::string(cfg.alpn);
    if (!mine || SSL_CTX_set_ex_data(ctx, alpn_index(), mine) != 1) {
      delete mine;
      *error = "out of memory";
      ok = false;
    } else {
      SSL_CTX_set_alpn_select_cb(ctx, select_alpn, mine);
    }
  }
  if (!ok) {
    SSL_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

SSL_CTX* new_client_ctx(const ClientConfig& cfg, std::string* error) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    *error = last_error("cannot create a TLS context");
    return nullptr;
  }
  bool ok = common_setup(ctx, cfg.alpn, false, error);
  if (ok) {
    if (!cfg.ca.empty()) ok = add_ca(ctx, cfg.ca, error);
    else SSL_CTX_set_default_verify_paths(ctx);
  }
  if (ok) SSL_CTX_set_verify(ctx, cfg.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!ok) {
    SSL_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

void ctx_up_ref(SSL_CTX* ctx) { SSL_CTX_up_ref(ctx); }
void ctx_free(SSL_CTX* ctx) { SSL_CTX_free(ctx); }

Conn* Conn::create(SSL_CTX* ctx, bool server, const char* servername) {
  auto* c = new (std::nothrow) Conn;
  if (!c) return nullptr;
  c->ssl_ = SSL_new(ctx);
  c->rbio_ = BIO_new(BIO_s_mem());
  c->wbio_ = BIO_new(BIO_s_mem());
  if (!c->ssl_ || !c->rbio_ || !c->wbio_) {
    BIO_free(c->rbio_);
    BIO_free(c->wbio_);
    c->rbio_ = c->wbio_ = nullptr;
    delete c;
    ERR_clear_error();
    return nullptr;
  }
  // An empty memory BIO reads as "retry", not end of file.
  BIO_set_mem_eof_return(c->rbio_, -1);
  SSL_set_bio(c->ssl_, c->rbio_, c->wbio_);
  if (server) {
    SSL_set_accept_state(c->ssl_);
  } else {
    SSL_set_connect_state(c->ssl_);
    if (servername && *servername) {
      ASN1_OCTET_STRING* ip = a2i_IPADDRESS(servername);
      if (ip) {
        ASN1_OCTET_STRING_free(ip);
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl_), servername);
      } else {
        SSL_set_tlsext_host_name(c->ssl_, servername);
        SSL_set1_host(c->ssl_, servername);
      }
      ERR_clear_error();
    }
  }
  return c;
}

Conn::~Conn() {
  if (ssl_) SSL_free(ssl_);  // frees both BIOs
}

bool Conn::feed(const uint8_t* p, size_t n) {
  size_t written = 0;
  return BIO_write_ex(rbio_, p, n, &written) == 1 && written == n;
}

Status Conn::fail(int ret) {
  const int e = SSL_get_error(ssl_, ret);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::kOk;
  if (e == SSL_ERROR_ZERO_RETURN) return Status::kClosed;
  const unsigned long first = ERR_peek_error();
  const int reason = ERR_GET_REASON(first);
  const long verify = SSL_get_verify_result(ssl_);
  bool auth = false;
  switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      auth = true;
      break;
    default:
      break;
  }
  error_ = last_error("TLS");
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK) {
    error_ += " (";
    error_ += X509_verify_cert_error_string(verify);
    error_ += ")";
  }
  if (e == SSL_ERROR_SYSCALL && error_ == "TLS") error_ = "TLS: unexpected end of the stream";
  return auth ? Status::kAuth : Status::kProtocol;
}

Status Conn::read(uint8_t* out, size_t cap, size_t* got) {
  *got = 0;
  while (*got < cap) {
    size_t n = 0;
    const int r = SSL_read_ex(ssl_, out + *got, cap - *got, &n);
    if (r == 1) {
      *got += n;
      continue;
    }
    const Status st = fail(r);
    // Bytes already read go up first; an end or an error shows on the next call.
    if (st != Status::kOk && *got) return Status::kOk;
    return st;
  }
  return Status::kOk;
}

Status Conn::write(const uint8_t* p, size_t n, size_t* taken) {
  *taken = 0;
  while (*taken < n) {
    size_t done = 0;
    const size_t chunk = n - *taken < kWriteChunk ? n - *taken : kWriteChunk;
    const int r = SSL_write_ex(ssl_, p + *taken, chunk, &done);
    if (r != 1) return fail(r);
    *taken += done;
  }
  return Status::kOk;
}

Status Conn::start() {
  const int r = SSL_do_handshake(ssl_);
  return r == 1 ? Status::kOk : fail(r);
}

void Conn::close_notify() {
  if (shut_) return;
  shut_ = true;
  if (SSL_is_init_finished(ssl_)) SSL_shutdown(ssl_);
  ERR_clear_error();
}

const uint8_t* Conn::out_data(size_t* n) {
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  }
  const size_t more = BIO_ctrl_pending(wbio_);
  if (more) {
    // Drained into one reused buffer: the socket gets it in as few writes as it takes.
    const size_t old = out_.size();
    out_.resize(old + more);
    size_t got = 0;
    BIO_read_ex(wbio_, out_.data() + old, more, &got);
    out_.resize(old + got);
  }
  *n = out_.size() - out_off_;
  return out_.data() + out_off_;
}

void Conn::consume_out(size_t n) {
  out_off_ += n;
  if (out_off_ == out_.size()) {
    out_off_ = 0;
    out_.clear();
    // A burst's buffer is not kept for the connection's life.
    if (out_.capacity() > 4 * kWriteChunk) std::vector<uint8_t>().swap(out_);
  }
}

size_t Conn::out_pending() const { return out_.size() - out_off_ + BIO_ctrl_pending(wbio_); }

bool Conn::has_input() const {
  // SSL_has_pending: bytes SSL already took from the BIO and has not decrypted yet (with read-ahead).
  return BIO_ctrl_pending(rbio_) > 0 || SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_) == 1;
}

bool Conn::established() const { return SSL_is_init_finished(ssl_) == 1; }

}  // namespace zs::tls
