// See args.h.
#include "args.h"

namespace zs::binding {

namespace {
uint8_t empty_byte;

// The classes of one environment, by Fault; empty references until setErrorClasses().
struct ErrorClasses {
  Napi::FunctionReference closed;
  Napi::FunctionReference resource;
};

const char* CodeOf(Fault fault) {
  return fault == Fault::kClosed ? "ZS_CONNECTION_CLOSED" : "ZS_NATIVE_RESOURCE";
}

Napi::Value SetErrorClasses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) {
    Napi::TypeError::New(env, "zserver native: setErrorClasses takes { ConnectionClosedError, NativeResourceError }")
        .ThrowAsJavaScriptException();
    return Napi::Value();
  }
  Napi::Object classes = info[0].As<Napi::Object>();
  Napi::Value closed = classes.Get("ConnectionClosedError");
  Napi::Value resource = classes.Get("NativeResourceError");
  if (!closed.IsFunction() || !resource.IsFunction()) {
    Napi::TypeError::New(env, "zserver native: setErrorClasses needs the ConnectionClosedError and NativeResourceError classes")
        .ThrowAsJavaScriptException();
    return Napi::Value();
  }
  auto* data = env.GetInstanceData<ErrorClasses>();
  if (!data) {
    data = new ErrorClasses;
    env.SetInstanceData(data);  // deleted with the environment
  }
  data->closed = Napi::Persistent(closed.As<Napi::Function>());
  data->resource = Napi::Persistent(resource.As<Napi::Function>());
  return env.Undefined();
}
}  // namespace

void ThrowFault(Napi::Env env, Fault fault, const std::string& message) {
  auto* data = env.GetInstanceData<ErrorClasses>();
  Napi::FunctionReference* cls = !data ? nullptr : fault == Fault::kClosed ? &data->closed : &data->resource;
  if (cls && !cls->IsEmpty()) {
    Napi::Value err = cls->New({Napi::String::New(env, message)});
    // A constructor that threw has left its own exception pending.
    if (!env.IsExceptionPending()) napi_throw(env, err);
    return;
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, CodeOf(fault)));
  err.ThrowAsJavaScriptException();
}

void InitErrors(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClasses", Napi::Function::New(env, SetErrorClasses, "setErrorClasses"));
}

bool GetView(Napi::Env env, napi_value value, napi_typedarray_type want, const char* name,
             View* out) {
  bool is_typed = false;
  napi_is_typedarray(env, value, &is_typed);
  if (is_typed) {
    napi_typedarray_type type;
    size_t length;
    void* data;
    // data already points at the first element; not asking for the
    // ArrayBuffer spares V8 materializing one for a small on-heap array.
    if (napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr) == napi_ok &&
        (type == want || (want == napi_uint8_array && type == napi_uint8_clamped_array))) {
      size_t elem = 1;
      if (type == napi_uint32_array) elem = 4;
      if (type == napi_biguint64_array) elem = 8;
      out->data = data ? static_cast<uint8_t*>(data) : &empty_byte;
      out->length = length;
      out->bytes = length * elem;
      return true;
    }
  }
  std::string message = std::string("zserver native: argument '") + name + "' has the wrong type";
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}

bool GetSize(Napi::Env env, napi_value value, const char* name, size_t* out) {
  double d = -1;
  if (napi_get_value_double(env, value, &d) == napi_ok && d >= 0 && d <= 9007199254740991.0 &&
      d == static_cast<double>(static_cast<uint64_t>(d))) {
    *out = static_cast<size_t>(d);
    return true;
  }
  std::string message = std::string("zserver native: argument '") + name +
                        "' must be a non-negative integer";
  Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}

}  // namespace zs::binding
