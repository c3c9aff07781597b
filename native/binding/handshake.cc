// Node-API glue for native/core/kx: the computations of the secure-channel
// handshake. lib/channel/handshake.ts checks every message before it gets
// here; these functions re-check lengths only.
//
//   new ServerIdentity(seed32)              the server's Ed25519 key, kept for signing
//     .publicKey() -> Buffer(32)
//     .respond(version, suite, clientHello) -> Buffer(130 ServerHello + 64 secrets) or code < 0
//     .respondAsync(version, suite, clientHello, callback)
//                                           the same computation on the libuv thread pool; callback
//                                           gets the Buffer or the code, on the JS thread
//     .close()                              every method after close() throws; the key is freed
//                                           once the last respondAsync() in flight has finished
//   x25519Keypair() -> Buffer(64): private key then public key
//   kxClient(private32, clientHello, serverHello130) -> Buffer(64 secrets) or code < 0
#include "handshake.h"

#include <openssl/crypto.h>

#include <vector>

#include "../core/kx.h"

namespace zs::binding {
namespace {

class ServerIdentity : public Napi::ObjectWrap<ServerIdentity> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ServerIdentity",
                       {InstanceMethod<&ServerIdentity::PublicKey>("publicKey"),
                        InstanceMethod<&ServerIdentity::Respond>("respond"),
                        InstanceMethod<&ServerIdentity::RespondAsync>("respondAsync"),
                        InstanceMethod<&ServerIdentity::Close>("close")});
  }

  explicit ServerIdentity(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ServerIdentity>(info) {
    View seed;
    if (!GetView(info.Env(), info[0], napi_uint8_array, "seed", &seed)) return;
    if (seed.bytes != 32) {
      Napi::RangeError::New(info.Env(), "zserver native: an Ed25519 seed is 32 bytes").ThrowAsJavaScriptException();
      return;
    }
    key_ = zs_ed25519_new(seed.data);
    if (!key_) ThrowFault(info.Env(), Fault::kResource, "zserver native: OpenSSL rejected the Ed25519 key");
  }

  ~ServerIdentity() override { zs_ed25519_free(key_); }

  // A respondAsync() job finished (on the JS thread): a close() that came meanwhile frees the key now.
  void JobDone() {
    if (--pending_ == 0 && closed_) {
      zs_ed25519_free(key_);
      key_ = nullptr;
    }
  }

 private:
  bool Live(Napi::Env env) {
    if (key_ && !closed_) return true;
    ThrowFault(env, Fault::kClosed, "zserver: ServerIdentity used after close()");
    return false;
  }

  Napi::Value PublicKey(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return Napi::Value();
    auto out = Napi::Buffer<uint8_t>::New(info.Env(), 32);
    zs_ed25519_public(key_, out.Data());
    return out;
  }

  Napi::Value Respond(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t version, suite;
    View hello;
    if (!Live(env) || !GetSize(env, info[0], "version", &version) ||
        !GetSize(env, info[1], "suite", &suite) ||
        !GetView(env, info[2], napi_uint8_array, "clientHello", &hello))
      return Napi::Value();
    if (version > 255 || suite > 255 || hello.bytes < 32 || hello.bytes > 256) {
      Napi::RangeError::New(env, "zserver native: handshake arguments out of range").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    auto out = Napi::Buffer<uint8_t>::New(env, ZS_KX_SERVER_HELLO_BYTES + 64);
    const int rc = zs_kx_server(key_, static_cast<uint8_t>(version), static_cast<uint8_t>(suite),
                                hello.data, hello.bytes, out.Data(), out.Data() + ZS_KX_SERVER_HELLO_BYTES);
    if (rc != ZS_KX_OK) {
      // A failure after the key agreement may leave part of the secrets behind: never hand them out.
      OPENSSL_cleanse(out.Data(), out.Length());
      return Napi::Number::New(env, rc);
    }
    return out;
  }

  Napi::Value RespondAsync(const Napi::CallbackInfo& info);

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return Napi::Value();
    closed_ = true;
    // Jobs on the thread pool still sign with the key: the last one frees it (JobDone).
    if (pending_ == 0) {
      zs_ed25519_free(key_);
      key_ = nullptr;
    }
    return info.Env().Undefined();
  }

  zs_ed25519* key_ = nullptr;
  bool closed_ = false;
  size_t pending_ = 0;
};

// One server handshake on the libuv thread pool (X25519, Ed25519 signature, HKDF: a few hundred
// microseconds), so the JS thread only installs the keys. The wrapper object is held by a
// reference until the callback ran, and the secrets are wiped from the job once handed over.
class RespondJob : public Napi::AsyncWorker {
 public:
  RespondJob(Napi::Function callback, Napi::Object self, ServerIdentity* owner, zs_ed25519* key, uint8_t version,
             uint8_t suite, const uint8_t* hello, size_t hello_bytes)
      : Napi::AsyncWorker(callback, "zserver.handshake"),
        owner_(owner),
        key_(key),
        version_(version),
        suite_(suite),
        hello_(hello, hello + hello_bytes) {
    self_ = Napi::Persistent(self);
  }

  ~RespondJob() override { OPENSSL_cleanse(out_, sizeof out_); }

  void Execute() override {
    rc_ = zs_kx_server(key_, version_, suite_, hello_.data(), hello_.size(), out_, out_ + ZS_KX_SERVER_HELLO_BYTES);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    owner_->JobDone();
    Napi::Value result;
    if (rc_ == ZS_KX_OK) {
      result = Napi::Buffer<uint8_t>::Copy(env, out_, sizeof out_);
    } else {
      result = Napi::Number::New(env, rc_);
    }
    OPENSSL_cleanse(out_, sizeof out_);
    self_.Reset();
    Callback().Call({result});
  }

 private:
  ServerIdentity* owner_;
  zs_ed25519* key_;
  uint8_t version_;
  uint8_t suite_;
  std::vector<uint8_t> hello_;
  uint8_t out_[ZS_KX_SERVER_HELLO_BYTES + 64] = {};
  int rc_ = ZS_KX_OK;
  Napi::ObjectReference self_;
};

Napi::Value ServerIdentity::RespondAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t version, suite;
  View hello;
  if (!Live(env) || !GetSize(env, info[0], "version", &version) || !GetSize(env, info[1], "suite", &suite) ||
      !GetView(env, info[2], napi_uint8_array, "clientHello", &hello))
    return Napi::Value();
  if (version > 255 || suite > 255 || hello.bytes < 32 || hello.bytes > 256) {
    Napi::RangeError::New(env, "zserver native: handshake arguments out of range").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  if (!info[3].IsFunction()) {
    Napi::TypeError::New(env, "zserver native: respondAsync needs a callback").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  auto* job = new RespondJob(info[3].As<Napi::Function>(), info.This().As<Napi::Object>(), this, key_,
                             static_cast<uint8_t>(version), static_cast<uint8_t>(suite), hello.data, hello.bytes);
  pending_++;
  job->Queue();
  return env.Undefined();
}

Napi::Value X25519Keypair(const Napi::CallbackInfo& info) {
  auto out = Napi::Buffer<uint8_t>::New(info.Env(), 64);
  if (zs_x25519_keypair(out.Data(), out.Data() + 32) != ZS_KX_OK) {
    OPENSSL_cleanse(out.Data(), 64);
    ThrowFault(info.Env(), Fault::kResource, "zserver native: OpenSSL could not make an X25519 key");
    return Napi::Value();
  }
  return out;
}

Napi::Value KxClient(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  View priv, client, server;
  if (!GetView(env, info[0], napi_uint8_array, "privateKey", &priv) ||
      !GetView(env, info[1], napi_uint8_array, "clientHello", &client) ||
      !GetView(env, info[2], napi_uint8_array, "serverHello", &server))
    return Napi::Value();
  if (priv.bytes != 32 || client.bytes > 256 || server.bytes != ZS_KX_SERVER_HELLO_BYTES) {
    Napi::RangeError::New(env, "zserver native: handshake arguments out of range").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  auto out = Napi::Buffer<uint8_t>::New(env, 64);
  const int rc = zs_kx_client(priv.data, client.data, client.bytes, server.data, out.Data());
  if (rc != ZS_KX_OK) {
    OPENSSL_cleanse(out.Data(), 64);
    return Napi::Number::New(env, rc);
  }
  return out;
}

}  // namespace

void InitHandshake(Napi::Env env, Napi::Object exports) {
  exports.Set("ServerIdentity", ServerIdentity::Define(env));
  exports.Set("x25519Keypair", Napi::Function::New(env, X25519Keypair, "x25519Keypair"));
  exports.Set("kxClient", Napi::Function::New(env, KxClient, "kxClient"));
}

}  // namespace zs::binding
