// zs::tls::Conn (native/core/tls_conn.h) with no sockets: a server and a
// client pump ciphertext between them in memory. Run under ASan, this checks
// that every SSL object, BIO and buffer is freed, on success and on failure.
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "check.h"
#include "tls_conn.h"

namespace {

std::string fixture(const char* name) {
  for (const char* dir : {"test/fixtures/tls/", "../test/fixtures/tls/", "../../test/fixtures/tls/"}) {
    std::ifstream f(std::string(dir) + name);
    if (f) {
      std::stringstream s;
      s << f.rdbuf();
      return s.str();
    }
  }
  return "";
}

// Moves every pending output byte of `from` into `to`.
void pump(zs::tls::Conn* from, zs::tls::Conn* to) {
  size_t n = 0;
  const uint8_t* d = from->out_data(&n);
  if (n) {
    to->feed(d, n);
    from->consume_out(n);
  }
}

struct Pair {
  SSL_CTX* sctx = nullptr;
  SSL_CTX* cctx = nullptr;
  zs::tls::Conn* s = nullptr;
  zs::tls::Conn* c = nullptr;
  ~Pair() {
    delete s;
    delete c;
    if (sctx) zs::tls::ctx_free(sctx);
    if (cctx) zs::tls::ctx_free(cctx);
  }
};

// Runs the handshake; returns the last status of each side.
void handshake(Pair& p, zs::tls::Status* ss, zs::tls::Status* cs) {
  uint8_t buf[256];
  size_t got;
  *cs = p.c->start();
  *ss = zs::tls::Status::kOk;
  for (int i = 0; i < 10 && *ss == zs::tls::Status::kOk && *cs == zs::tls::Status::kOk; i++) {
    pump(p.c, p.s);
    *ss = p.s->read(buf, sizeof buf, &got);
    pump(p.s, p.c);
    *cs = p.c->read(buf, sizeof buf, &got);
    if (p.s->established() && p.c->established()) break;
  }
}

}  // namespace

TEST(tls_conn_handshake_and_data_both_ways) {
  const std::string cert = fixture("server.pem"), key = fixture("server.key"), ca = fixture("ca.pem");
  CHECK(!cert.empty());
  if (cert.empty()) return;
  Pair p;
  std::string err;
  p.sctx = zs::tls::new_server_ctx({cert, key, "", "", ""}, &err);
  zs::tls::ClientConfig cc;
  cc.ca = ca;
  p.cctx = zs::tls::new_client_ctx(cc, &err);
  CHECK(p.sctx && p.cctx);
  if (!p.sctx || !p.cctx) return;
  p.s = zs::tls::Conn::create(p.sctx, true, nullptr);
  p.c = zs::tls::Conn::create(p.cctx, false, "localhost");
  zs::tls::Status ss, cs;
  handshake(p, &ss, &cs);
  CHECK(p.s->established());
  CHECK(p.c->established());
  // 1 MiB from the client, read back in pieces by the server.
  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>(i * 7);
  size_t taken = 0;
  CHECK(p.c->write(reinterpret_cast<const uint8_t*>(big.data()), big.size(), &taken) == zs::tls::Status::kOk);
  CHECK_EQ(taken, big.size());
  pump(p.c, p.s);
  std::string got;
  uint8_t buf[50000];
  for (int i = 0; i < 100 && got.size() < big.size(); i++) {
    size_t n = 0;
    CHECK(p.s->read(buf, sizeof buf, &n) == zs::tls::Status::kOk);
    got.append(reinterpret_cast<char*>(buf), n);
  }
  CHECK(got == big);
  CHECK(!p.s->has_input());
  // close_notify reads as kClosed on the other side.
  p.s->close_notify();
  pump(p.s, p.c);
  size_t n = 0;
  CHECK(p.c->read(buf, sizeof buf, &n) == zs::tls::Status::kClosed);
}

TEST(tls_conn_unknown_ca_is_auth_on_both_sides) {
  const std::string cert = fixture("server.pem"), key = fixture("server.key"), other = fixture("other.pem");
  if (cert.empty()) return;
  Pair p;
  std::string err;
  p.sctx = zs::tls::new_server_ctx({cert, key, "", "", ""}, &err);
  zs::tls::ClientConfig cc;
  cc.ca = other;
  p.cctx = zs::tls::new_client_ctx(cc, &err);
  p.s = zs::tls::Conn::create(p.sctx, true, nullptr);
  p.c = zs::tls::Conn::create(p.cctx, false, "localhost");
  zs::tls::Status ss, cs;
  handshake(p, &ss, &cs);
  CHECK(cs == zs::tls::Status::kAuth);
  CHECK(p.c->error().find("certificate verify failed") != std::string::npos);
  pump(p.c, p.s);
  uint8_t buf[64];
  size_t n;
  CHECK(p.s->read(buf, sizeof buf, &n) == zs::tls::Status::kAuth);
}

TEST(tls_conn_garbage_is_protocol) {
  const std::string cert = fixture("server.pem"), key = fixture("server.key");
  if (cert.empty()) return;
  Pair p;
  std::string err;
  p.sctx = zs::tls::new_server_ctx({cert, key, "", "", ""}, &err);
  p.s = zs::tls::Conn::create(p.sctx, true, nullptr);
  const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  p.s->feed(reinterpret_cast<const uint8_t*>(junk), sizeof junk - 1);
  uint8_t buf[64];
  size_t n;
  CHECK(p.s->read(buf, sizeof buf, &n) == zs::tls::Status::kProtocol);
  CHECK(!p.s->error().empty());
}

TEST(tls_conn_bad_key_or_cert_is_refused_with_a_reason) {
  std::string err;
  CHECK(zs::tls::new_server_ctx({"not pem", "not pem", "", "", ""}, &err) == nullptr);
  CHECK(err.find("cert") != std::string::npos);
  const std::string cert = fixture("other.pem"), key = fixture("server.key");
  if (cert.empty()) return;
  err.clear();
  CHECK(zs::tls::new_server_ctx({cert, key, "", "", ""}, &err) == nullptr);
  CHECK(err.find("does not match") != std::string::npos);
}
