// Node-API glue for native/core/io_loop: the TcpLoop class, used only by
// lib/transport/native-tcp.ts, which validates arguments first.
//
//   new TcpLoop(onBatch, threaded)   threaded: a dedicated I/O thread posts batches
//                              through a thread-safe function; otherwise the loop
//                              runs on the JS thread, driven by a libuv poll handle
//                              on its epoll descriptor. onBatch(frames, events, data,
//                              peers, kinds, flags, offsets, lengths, eventRecords)
//                              runs on the JS thread once per batch either way
//   listen(host, port, reusePort, options) -> port | -errno
//   listenFd(fd, options, tlsContext?) -> port | -errno   accept on an inherited listening socket
//   unlisten(index)            stop accepting on listener `index` (EV_UNLISTENED follows)
//   TcpLoop.listenSocket(host, port, reusePort) -> { fd, port } | -errno   a listening socket for
//                              child processes to inherit (an accept queue shared by workers)
//   connect(host, port, localHost | null, timeoutMs, tag, options) -> 0 | -errno
//   submit(data, count, ops, peers, kindBytes, lens[, sourceOffsets, source])
//                              sends/closes/releases, in order; forwards copy
//                              lens[i] bytes of source from sourceOffsets[i]
//   peerAddress(peer) -> { remoteAddress, remotePort, localAddress, localPort } | undefined
//   connect(host, port, localHost | null, timeoutMs, tag, options, path, hostHeader)   WebSocket options
//   takeRequest(peer) -> Buffer | undefined   the request of a WebSocket OPEN or HTTP event (zs_io_take_request)
//   shutdown(), ref(), unref(), destroy()
//   compression(Float64Array [method, level, checksum, threshold])   before any listen/connect
//   bufferStats() -> { partialFrameBytes, sendQueueBytes }   as of the loop's last tick
//   recordStats() -> { framesCompressed, bytesBefore, bytesAfter, framesDecompressed,
//                      recordsSealed, recordsOpened, rekeysSent, rekeysReceived }
//   options: an object read by name, the fields of zs_io_options: { headToken, tailToken,
//            maxFrameSize, idleTimeout, keepaliveInterval, highWaterMark, maxSendQueue,
//            frameTimeout, flags (ZS_IO_*), httpMaxHead, httpTimeout, httpMaxBody (WebSocket
//            endpoints), tlsHandshakeTimeout, tlsMaxHandshakes (TLS) }, all of them, 0 when
//            unused (TcpLoopOptions in lib/native.ts; made by lib/transport/native-options.ts)
//   connect(host, port, localHost, timeoutMs, tag, options, tlsContext?, servername?, path?, hostHeader?)
//            path and hostHeader: the upgrade request of a WebSocket endpoint (flags ZS_IO_WEBSOCKET)
//   TcpLoop.closeCodes: { local: ZS_CLOSE_LOCAL, ... } (the TS side checks it agrees with its table)
//   TcpLoop.tlsContext(server, cert, key, passphrase, ca, verify, alpnWire) -> External (an SSL_CTX)
//                              | string (why it cannot be made); PEM texts, '' for none
//   listen(..., options, tlsContext?) and connect(..., options, tlsContext?, servername?) take one
//   tlsError(peer) -> string   the reason text of a close with b = ZS_CLOSE_B_TLS
//
// A batch is copied into typed arrays the JS side owns and this class reuses
// (growing them when a batch is bigger), so nothing of the I/O thread's memory
// is ever visible to JavaScript and the next batch can be filled meanwhile.
// After destroy() every method throws.
#include "tcp.h"

#include <uv.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "../core/io_loop.h"
#include "../core/net_socket.h"
#include "../core/tls_conn.h"
#include "tcp_batch.h"

namespace zs::binding {
namespace {

class TcpLoop : public Napi::ObjectWrap<TcpLoop> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TcpLoop",
                       {InstanceMethod<&TcpLoop::Listen>("listen"), InstanceMethod<&TcpLoop::Connect>("connect"),
                        InstanceMethod<&TcpLoop::Submit>("submit"), InstanceMethod<&TcpLoop::PeerAddress>("peerAddress"),
                        InstanceMethod<&TcpLoop::Shutdown>("shutdown"), InstanceMethod<&TcpLoop::Ref>("ref"),
                        InstanceMethod<&TcpLoop::Unref>("unref"), InstanceMethod<&TcpLoop::Destroy>("destroy"),
                        InstanceMethod<&TcpLoop::Compression>("compression"),
                        InstanceMethod<&TcpLoop::Spin>("spin"),
                        InstanceMethod<&TcpLoop::RecordStats>("recordStats"),
                        InstanceMethod<&TcpLoop::BufferStats>("bufferStats"),
                        InstanceMethod<&TcpLoop::TakeRequest>("takeRequest"),
                        InstanceMethod<&TcpLoop::ListenFd>("listenFd"),
                        InstanceMethod<&TcpLoop::Unlisten>("unlisten"),
                        StaticMethod<&TcpLoop::ListenSocket>("listenSocket"),
                        StaticValue("slotSize", Napi::Number::New(env, static_cast<double>(zs_io_slot_size()))),
                        InstanceMethod<&TcpLoop::TlsError>("tlsError"),
                       StaticMethod<&TcpLoop::TlsContext>("tlsContext"),
                       StaticValue("closeTlsDetail", Napi::Number::New(env, ZS_CLOSE_B_TLS)),
                       StaticValue("closeCodes", CloseCodes(env))});
  }

  // The ZS_CLOSE_* codes by the CloseReason they stand for.
  static Napi::Object CloseCodes(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    const std::pair<const char*, int> codes[] = {
        {"local", ZS_CLOSE_LOCAL},       {"remote", ZS_CLOSE_REMOTE},     {"reset", ZS_CLOSE_RESET},
        {"timeout", ZS_CLOSE_TIMEOUT},   {"bad-token", ZS_CLOSE_BAD_TOKEN}, {"oversize", ZS_CLOSE_OVERSIZE},
        {"protocol", ZS_CLOSE_PROTOCOL}, {"auth", ZS_CLOSE_AUTH},         {"shutdown", ZS_CLOSE_SHUTDOWN},
        {"slow-consumer", ZS_CLOSE_SLOW_CONSUMER}, {"refused", ZS_CLOSE_REFUSED}};
    for (const auto& [name, code] : codes) o.Set(name, Napi::Number::New(env, code));
    return o;
  }

  explicit TcpLoop(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TcpLoop>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) {
      Napi::TypeError::New(env, "zserver native: TcpLoop needs a batch callback").ThrowAsJavaScriptException();
      return;
    }
    shared_ = new Shared;
    if (info[1].ToBoolean().Value()) {
      StartThreaded(env, info[0]);
    } else {
      StartInline(env, info[0]);
    }
  }

  ~TcpLoop() override {
    if (!shared_) return;
    if (!shared_->destroyed) Teardown(Env());
    Drop(shared_);
  }

 private:
  Shared* shared_ = nullptr;

  void StartThreaded(Napi::Env env, napi_value fn) {
    napi_value name;
    napi_create_string_utf8(env, "zserver.TcpLoop", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, fn, nullptr, name, 0, 1, shared_, FinalizeShared, shared_, CallJs,
                                        &shared_->tsfn) != napi_ok) {
      shared_->holders = 1;
      shared_->destroyed = true;
      ThrowFault(env, Fault::kResource, "zserver native: cannot create the batch channel");
      return;
    }
    napi_unref_threadsafe_function(env, shared_->tsfn);
    shared_->loop = zs_io_create(PostFromIo, shared_);
    if (!shared_->loop) {
      std::string message = std::string("zserver native: cannot start the I/O loop: ") + std::strerror(errno);
      Teardown(env);
      ThrowFault(env, Fault::kResource, message);
    }
  }

  void StartInline(Napi::Env env, napi_value fn) {
    Shared* s = shared_;
    s->holders = 1;  // no thread-safe function: the object alone owns it
    s->inline_mode = true;
    s->env = env;
    napi_create_reference(env, fn, 1, &s->fn_ref);
    napi_value name;
    napi_create_string_utf8(env, "zserver.TcpLoop", NAPI_AUTO_LENGTH, &name);
    napi_async_init(env, nullptr, name, &s->async);
    uv_loop_s* uv = nullptr;
    napi_get_uv_event_loop(env, &uv);
    s->loop = zs_io_create_inline(PostInline, s);
    if (!s->loop || !uv) {
      std::string message = std::string("zserver native: cannot start the I/O loop: ") + std::strerror(errno);
      s->destroyed = true;
      ThrowFault(env, Fault::kResource, message);
      return;
    }
    s->uv = uv;
    s->poll = new uv_poll_t;
    s->timer = new uv_timer_t;
    uv_poll_init(uv, s->poll, zs_io_fd(s->loop));
    uv_timer_init(uv, s->timer);
    s->poll->data = s;
    s->timer->data = s;
    uv_poll_start(s->poll, UV_READABLE, OnPoll);
    uv_timer_start(s->timer, OnTimer, zs_io_tick_ms(), zs_io_tick_ms());
    uv_unref(reinterpret_cast<uv_handle_t*>(s->poll));
    uv_unref(reinterpret_cast<uv_handle_t*>(s->timer));
    napi_add_env_cleanup_hook(env, CleanupInline, s);
  }

  // Threaded: stops the thread, then lets the thread-safe function finalize.
  // Inline: stops polling and destroys the loop at once.
  void Teardown(napi_env env) {
    shared_->destroyed = true;
    if (shared_->inline_mode) {
      StopInline(shared_);
      napi_remove_env_cleanup_hook(env, CleanupInline, shared_);
      if (shared_->async) napi_async_destroy(env, shared_->async);
      shared_->async = nullptr;
      shared_->DeleteRefs(env);
      return;
    }
    if (shared_->loop) zs_io_destroy(shared_->loop);
    shared_->loop = nullptr;
    if (shared_->tsfn) napi_release_threadsafe_function(shared_->tsfn, napi_tsfn_abort);
    shared_->tsfn = nullptr;
  }

  bool Alive(Napi::Env env) {
    if (shared_ && !shared_->destroyed && shared_->loop) return true;
    ThrowFault(env, Fault::kClosed, "zserver native: the TcpLoop was destroyed");
    return false;
  }

  // An endpoint's options: an object read by name (TcpLoopOptions in lib/native.ts; the fields
  // of zs_io_options), once per listen() or connect(). Every field must be an integer from 0 to
  // 2^32 - 1; the TS side checks them with messages that name the user's option.
  static bool GetOptions(Napi::Env env, Napi::Value value, zs_io_options* o) {
    if (!value.IsObject()) {
      Napi::TypeError::New(env, "zserver native: options must be a TcpLoopOptions object").ThrowAsJavaScriptException();
      return false;
    }
    Napi::Object obj = value.As<Napi::Object>();
    // Option sets are interned by their bytes: no padding or field left unset.
    std::memset(o, 0, sizeof *o);
    const std::pair<const char*, uint32_t*> fields[] = {
        {"headToken", &o->frame.head_token},
        {"tailToken", &o->frame.tail_token},
        {"maxFrameSize", &o->frame.max_payload},
        {"idleTimeout", &o->idle_timeout_ms},
        {"keepaliveInterval", &o->keepalive_ms},
        {"highWaterMark", &o->high_water_mark},
        {"maxSendQueue", &o->max_send_queue},
        {"frameTimeout", &o->frame_timeout_ms},
        {"flags", &o->flags},
        {"httpMaxHead", &o->http_max_head},
        {"httpTimeout", &o->http_timeout_ms},
        {"httpMaxBody", &o->http_max_body},
        {"tlsHandshakeTimeout", &o->tls_handshake_timeout_ms},
        {"tlsMaxHandshakes", &o->tls_max_handshakes},
    };
    for (const auto& [name, field] : fields) {
      Napi::Value v = obj.Get(name);
      if (env.IsExceptionPending()) return false;  // a throwing getter
      const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d))) {
        std::string message = std::string("zserver native: options.") + name + " must be an integer from 0 to 2^32 - 1";
        Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
        return false;
      }
      *field = static_cast<uint32_t>(d);
    }
    return true;
  }

  // The SSL_CTX of an External made by tlsContext(), or null for undefined/null.
  static bool GetTls(Napi::Env env, Napi::Value value, zs_io_options* o) {
    if (value.IsUndefined() || value.IsNull()) return true;
    if (!value.IsExternal()) {
      Napi::TypeError::New(env, "zserver native: tlsContext must come from TcpLoop.tlsContext()")
          .ThrowAsJavaScriptException();
      return false;
    }
    o->tls = value.As<Napi::External<SSL_CTX>>().Data();
    return true;
  }

  static Napi::Value TlsContext(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    for (size_t i = 1; i <= 4; i++) {
      if (!info[i].IsString()) {
        Napi::TypeError::New(env, "zserver native: tlsContext takes PEM strings").ThrowAsJavaScriptException();
        return Napi::Value();
      }
    }
    std::string alpn;
    if (info[6].IsTypedArray()) {
      auto a = info[6].As<Napi::Uint8Array>();
      alpn.assign(reinterpret_cast<const char*>(a.Data()), a.ByteLength());
    }
    std::string error;
    SSL_CTX* ctx;
    if (info[0].ToBoolean().Value()) {
      zs::tls::ServerConfig cfg;
      cfg.cert = info[1].As<Napi::String>().Utf8Value();
      cfg.key = info[2].As<Napi::String>().Utf8Value();
      cfg.passphrase = info[3].As<Napi::String>().Utf8Value();
      cfg.ca = info[4].As<Napi::String>().Utf8Value();
      cfg.alpn = alpn;
      ctx = zs::tls::new_server_ctx(cfg, &error);
      // The key's text is not kept in this copy longer than needed.
      std::fill(cfg.key.begin(), cfg.key.end(), '\0');
      std::fill(cfg.passphrase.begin(), cfg.passphrase.end(), '\0');
    } else {
      zs::tls::ClientConfig cfg;
      cfg.ca = info[4].As<Napi::String>().Utf8Value();
      cfg.verify = info[5].ToBoolean().Value();
      cfg.alpn = alpn;
      ctx = zs::tls::new_client_ctx(cfg, &error);
    }
    if (!ctx) return Napi::String::New(env, error);
    return Napi::External<SSL_CTX>::New(env, ctx, [](Napi::Env, SSL_CTX* c) { zs::tls::ctx_free(c); });
  }

  Napi::Value TlsError(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t peer;
    if (!Alive(env) || !GetSize(env, info[0], "peer", &peer)) return Napi::Value();
    char buf[1100];
    const int n = peer > 0x1ffffffffull ? 0 : zs_io_tls_error(shared_->loop, static_cast<uint64_t>(peer), buf, sizeof buf);
    return Napi::String::New(env, buf, static_cast<size_t>(n));
  }

  static bool GetString(Napi::Env env, napi_value value, const char* name, std::string* out) {
    char buf[256];
    size_t len = 0;
    if (napi_get_value_string_utf8(env, value, buf, sizeof buf, &len) != napi_ok || len >= sizeof buf - 1) {
      std::string message = std::string("zserver native: argument '") + name + "' must be a short string";
      Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
      return false;
    }
    out->assign(buf, len);
    return true;
  }

  Napi::Value Listen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string host;
    size_t port;
    zs_io_options o{};
    if (!Alive(env) || !GetString(env, info[0], "host", &host) || !GetSize(env, info[1], "port", &port) ||
        !GetOptions(env, info[3], &o) || !GetTls(env, info[4], &o))
      return Napi::Value();
    int r = zs_io_listen(shared_->loop, host.c_str(), static_cast<int>(port), info[2].ToBoolean().Value(), &o);
    return Napi::Number::New(env, r);
  }

  Napi::Value ListenFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t fd;
    zs_io_options o{};
    if (!Alive(env) || !GetSize(env, info[0], "fd", &fd) || fd > INT32_MAX || !GetOptions(env, info[1], &o) ||
        !GetTls(env, info[2], &o))
      return Napi::Value();
    return Napi::Number::New(env, zs_io_listen_fd(shared_->loop, static_cast<int>(fd), &o));
  }

  Napi::Value Unlisten(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t index;
    if (!Alive(env) || !GetSize(env, info[0], "index", &index) || index > UINT32_MAX) return Napi::Value();
    zs_io_unlisten(shared_->loop, static_cast<uint32_t>(index));
    return env.Undefined();
  }

  // Not tied to a loop: the supervisor of a group makes the socket, its workers accept on it.
  static Napi::Value ListenSocket(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string host;
    size_t port;
    if (!GetString(env, info[0], "host", &host) || !GetSize(env, info[1], "port", &port)) return Napi::Value();
    int bound = 0;
    int fd = zs_net_listen(host.c_str(), static_cast<int>(port), info[2].ToBoolean().Value(), 4096, &bound);
    if (fd < 0) return Napi::Number::New(env, fd);
    Napi::Object out = Napi::Object::New(env);
    out.Set("fd", Napi::Number::New(env, fd));
    out.Set("port", Napi::Number::New(env, bound));
    return out;
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string host, local, servername;
    size_t port, timeout, tag;
    zs_io_options o{};
    if (!Alive(env) || !GetString(env, info[0], "host", &host) || !GetSize(env, info[1], "port", &port) ||
        (!info[2].IsNull() && !GetString(env, info[2], "localHost", &local)) ||
        !GetSize(env, info[3], "timeout", &timeout) || !GetSize(env, info[4], "tag", &tag) ||
        !GetOptions(env, info[5], &o) || !GetTls(env, info[6], &o) ||
        (info[7].IsString() && !GetString(env, info[7], "servername", &servername)))
      return Napi::Value();
    if (o.flags & ZS_IO_WEBSOCKET) {
      std::string path, host_header;
      if (!GetString(env, info[8], "path", &path) || !GetString(env, info[9], "hostHeader", &host_header))
        return Napi::Value();
      int r = zs_io_connect_ws(shared_->loop, host.c_str(), static_cast<int>(port),
                               local.empty() ? nullptr : local.c_str(), static_cast<uint32_t>(timeout),
                               static_cast<uint32_t>(tag), &o, path.c_str(), host_header.c_str(),
                               servername.empty() ? nullptr : servername.c_str());
      return Napi::Number::New(env, r);
    }
    int r = zs_io_connect_tls(shared_->loop, host.c_str(), static_cast<int>(port),
                              local.empty() ? nullptr : local.c_str(), static_cast<uint32_t>(timeout),
                              static_cast<uint32_t>(tag), &o, servername.empty() ? nullptr : servername.c_str());
    return Napi::Number::New(env, r);
  }

  // The request of a WebSocket OPEN or HTTP event (see zs_io_take_request), once.
  Napi::Value TakeRequest(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t peer;
    if (!Alive(env) || !GetSize(env, info[0], "peer", &peer) || peer > UINT32_MAX) return Napi::Value();
    const long n = zs_io_take_request(shared_->loop, static_cast<uint32_t>(peer), nullptr, 0);
    if (n < 0) return env.Undefined();
    Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, static_cast<size_t>(n));
    if (zs_io_take_request(shared_->loop, static_cast<uint32_t>(peer), out.Data(), static_cast<size_t>(n)) != n)
      return env.Undefined();
    return out;
  }

  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    View data, ops, peers, kinds, lens, offs{}, source{};
    size_t count;
    if (!Alive(env) || !GetView(env, info[0], napi_uint8_array, "data", &data) ||
        !GetSize(env, info[1], "count", &count) || !GetView(env, info[2], napi_uint8_array, "ops", &ops) ||
        !GetView(env, info[3], napi_uint32_array, "peers", &peers) ||
        !GetView(env, info[4], napi_uint8_array, "kindBytes", &kinds) ||
        !GetView(env, info[5], napi_uint32_array, "lens", &lens))
      return Napi::Value();
    // Forward records (ZS_OP_FORWARD) need both: their offsets, and the memory they point into.
    const bool forwards = info.Length() > 7 && !info[7].IsUndefined() && !info[7].IsNull();
    if (forwards && (!GetView(env, info[6], napi_uint32_array, "sourceOffsets", &offs) ||
                     !GetView(env, info[7], napi_uint8_array, "source", &source)))
      return Napi::Value();
    if (count > ops.length || count > peers.length || count > kinds.length || count > lens.length ||
        (forwards && count > offs.length)) {
      Napi::RangeError::New(env, "zserver native: count exceeds the record arrays").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    const auto* l = reinterpret_cast<const uint32_t*>(lens.data);
    const auto* o = reinterpret_cast<const uint32_t*>(offs.data);
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
      const uint8_t op = ops.data[i];
      if (op == ZS_OP_SEND || op == ZS_OP_OFFLOAD || op == ZS_OP_HTTP_REPLY || op == ZS_OP_SEND_FILE) {
        if (op == ZS_OP_SEND_FILE && l[i] < sizeof(zs_io_file_range)) {
          Napi::RangeError::New(env, "zserver native: a send-file record is shorter than its range")
              .ThrowAsJavaScriptException();
          return Napi::Value();
        }
        total += l[i];
      } else if (op == ZS_OP_FORWARD && (!forwards || uint64_t{o[i]} + l[i] > source.bytes)) {
        Napi::RangeError::New(env, "zserver native: a forwarded frame lies outside its source")
            .ThrowAsJavaScriptException();
        return Napi::Value();
      }
    }
    if (total > data.bytes) {
      Napi::RangeError::New(env, "zserver native: payload lengths exceed the data").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    zs_io_submit_from(shared_->loop, data.data, total, static_cast<uint32_t>(count), ops.data,
                      reinterpret_cast<const uint32_t*>(peers.data), kinds.data, l, forwards ? source.data : nullptr,
                      forwards ? o : nullptr);
    return env.Undefined();
  }

  Napi::Value PeerAddress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t peer;
    if (!Alive(env) || !GetSize(env, info[0], "peer", &peer)) return Napi::Value();
    char remote[64], local[64];
    int rport = 0, lport = 0;
    if (peer > UINT32_MAX ||
        zs_io_peer_address(shared_->loop, static_cast<uint32_t>(peer), 1, remote, sizeof remote, &rport) < 0 ||
        zs_io_peer_address(shared_->loop, static_cast<uint32_t>(peer), 0, local, sizeof local, &lport) < 0)
      return env.Undefined();
    Napi::Object out = Napi::Object::New(env);
    out.Set("remoteAddress", Napi::String::New(env, remote));
    out.Set("remotePort", Napi::Number::New(env, rport));
    out.Set("localAddress", Napi::String::New(env, local));
    out.Set("localPort", Napi::Number::New(env, lport));
    return out;
  }

  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    if (!Alive(info.Env())) return Napi::Value();
    zs_io_shutdown(shared_->loop);
    return info.Env().Undefined();
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (!Alive(info.Env())) return Napi::Value();
    if (shared_->inline_mode) {
      uv_ref(reinterpret_cast<uv_handle_t*>(shared_->poll));
      uv_ref(reinterpret_cast<uv_handle_t*>(shared_->timer));
    } else {
      napi_ref_threadsafe_function(info.Env(), shared_->tsfn);
    }
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (!Alive(info.Env())) return Napi::Value();
    if (shared_->inline_mode) {
      uv_unref(reinterpret_cast<uv_handle_t*>(shared_->poll));
      uv_unref(reinterpret_cast<uv_handle_t*>(shared_->timer));
    } else {
      napi_unref_threadsafe_function(info.Env(), shared_->tsfn);
    }
    return info.Env().Undefined();
  }

  Napi::Value Compression(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    View v;
    if (!Alive(env) || !GetView(env, info[0], napi_float64_array, "config", &v)) return Napi::Value();
    const double* d = reinterpret_cast<const double*>(v.data);
    if (v.length < 4 || !(d[0] == 1 || d[0] == 2) || !(d[1] == 1 || d[1] == 2) ||
        !(d[3] >= 0 && d[3] <= 4294967295.0)) {
      Napi::RangeError::New(env, "zserver native: bad compression config").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    zs_fcomp_config cfg{static_cast<uint8_t>(d[0]), static_cast<uint8_t>(d[1]), static_cast<uint8_t>(d[2] != 0),
                        static_cast<uint32_t>(d[3])};
    zs_io_set_compression(shared_->loop, &cfg);
    return env.Undefined();
  }

  // NativeTcpOptions.spinMicros, checked by the caller (lib/transport/native-options.ts): how long
  // an inline loop watches for the answer to a turn before it gives the thread back to libuv
  // (RunInline, tcp_batch.cc). An I/O thread blocks in its own epoll_wait and does not spin.
  Napi::Value Spin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return Napi::Value();
    const double us = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(us >= 0 && us <= 1000000)) {
      Napi::RangeError::New(env, "zserver native: spin takes microseconds from 0 to 1000000").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    shared_->spin_us = static_cast<uint32_t>(us);
    return env.Undefined();
  }

  Napi::Value RecordStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return Napi::Value();
    uint64_t counts[8];
    zs_io_record_stats(shared_->loop, counts);
    // The order of zs_io_record_stats (io_loop.h).
    static const char* const names[8] = {"framesCompressed", "bytesBefore",   "bytesAfter", "framesDecompressed",
                                         "recordsSealed",    "recordsOpened", "rekeysSent", "rekeysReceived"};
    Napi::Object out = Napi::Object::New(env);
    for (uint32_t i = 0; i < 8; i++) out.Set(names[i], Napi::Number::New(env, static_cast<double>(counts[i])));
    return out;
  }

  Napi::Value BufferStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return Napi::Value();
    uint64_t b[2];
    zs_io_buffer_stats(shared_->loop, b);
    Napi::Object out = Napi::Object::New(env);
    out.Set("partialFrameBytes", Napi::Number::New(env, static_cast<double>(b[0])));
    out.Set("sendQueueBytes", Napi::Number::New(env, static_cast<double>(b[1])));
    return out;
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    if (!Alive(info.Env())) return Napi::Value();
    Teardown(info.Env());
    return info.Env().Undefined();
  }
};

}  // namespace

void InitTcp(Napi::Env env, Napi::Object exports) { exports.Set("TcpLoop", TcpLoop::Define(env)); }

}  // namespace zs::binding
