// The libwebsockets peer: context setup, the service thread and the protocol callback.
#include "lws_peer.h"

#include <algorithm>
#include <cstring>

namespace interop {

LwsPeer::LwsPeer(const Options& options) : options_(options) {
  lws_set_log_level(LLL_ERR | LLL_WARN, nullptr);
  protocols_[0].name = "ds-interop";
  protocols_[0].callback = &LwsPeer::callback;
  protocols_[0].per_session_data_size = 0;
  protocols_[0].rx_buffer_size = 64 * 1024;

  lws_context_creation_info info;
  std::memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  info.protocols = protocols_;
  info.user = this;
  info.gid = -1;
  info.uid = -1;
  info.vhost_name = "default";
  if (options_.listen) {
    info.port = 0;
    info.iface = "127.0.0.1";
    info.ssl_cert_filepath = options_.certPath.c_str();
    info.ssl_private_key_filepath = options_.keyPath.c_str();
  } else {
    info.port = CONTEXT_PORT_NO_LISTEN;
  }
  if (!options_.caPath.empty()) info.client_ssl_ca_filepath = options_.caPath.c_str();

  ctx_ = lws_create_context(&info);
  if (!ctx_) return;
  lws_vhost* vh = lws_create_vhost(ctx_, &info);
  if (!vh) {
    lws_context_destroy(ctx_);
    ctx_ = nullptr;
    return;
  }
  if (options_.listen) port_ = lws_get_vhost_listen_port(vh);
  thread_ = std::thread([this] {
    while (!stop_.load()) lws_service(ctx_, 0);
  });
}

LwsPeer::~LwsPeer() {
  if (!ctx_) return;
  stop_.store(true);
  lws_cancel_service(ctx_);
  thread_.join();
  lws_context_destroy(ctx_);
}

Conn* LwsPeer::newConn() {
  auto c = std::make_unique<Conn>();
  c->peer = this;
  Conn* raw = c.get();
  std::lock_guard<std::mutex> lock(mu_);
  conns_.push_back(std::move(c));
  return raw;
}

void LwsPeer::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  lws_cancel_service(ctx_);
}

void LwsPeer::connect(Conn* c) {
  post([this, c] { connectNow(c); });
}

void LwsPeer::send(Conn* c, OutMsg m) {
  post([this, c, m = std::move(m)]() mutable { sendNow(c, std::move(m)); });
}

Conn* LwsPeer::accepted(size_t i) {
  std::lock_guard<std::mutex> lock(mu_);
  return i < accepted_.size() ? accepted_[i] : nullptr;
}

void LwsPeer::runTasks() {
  std::deque<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks.swap(tasks_);
  }
  for (auto& t : tasks) t();
}

void LwsPeer::connectNow(Conn* c) {
  lws_client_connect_info ci;
  std::memset(&ci, 0, sizeof ci);
  ci.context = ctx_;
  ci.vhost = lws_get_vhost_by_name(ctx_, "default");
  ci.address = c->address.c_str();
  ci.port = c->port;
  ci.ssl_connection = LCCSCF_USE_SSL;
  ci.path = c->path.c_str();
  ci.host = c->host.c_str();
  ci.origin = c->host.c_str();
  ci.local_protocol_name = protocols_[0].name;
  ci.opaque_user_data = c;
  if (!lws_client_connect_via_info(&ci)) {
    record(c, [](Observed& o) {
      if (!o.closed) {
        o.connectionError = true;
        if (o.error.empty()) o.error = "lws_client_connect_via_info failed";
        o.closed = true;
      }
    });
  }
}

void LwsPeer::sendNow(Conn* c, OutMsg m) {
  c->outq.push_back(std::move(m));
  if (c->wsi) lws_callback_on_writable(c->wsi);
}

int LwsPeer::callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  if (!wsi) return 0;
  auto* self = static_cast<LwsPeer*>(lws_context_user(lws_get_context(wsi)));
  if (!self) return lws_callback_http_dummy(wsi, reason, user, in, len);
  return self->handle(wsi, reason, user, in, len);
}

int LwsPeer::handle(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* c = static_cast<Conn*>(lws_get_opaque_user_data(wsi));
  switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
      runTasks();
      return 0;

    case LWS_CALLBACK_ESTABLISHED: {
      c = newConn();
      c->echo = options_.serverEcho;
      c->wsi = wsi;
      lws_set_opaque_user_data(wsi, c);
      std::lock_guard<std::mutex> lock(mu_);
      c->obs.established = true;
      accepted_.push_back(c);
      return 0;
    }

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      if (!c) return -1;
      c->wsi = wsi;
      record(c, [](Observed& o) { o.established = true; });
      if (c->onEstablished) c->onEstablished(*c);
      if (!c->outq.empty()) lws_callback_on_writable(wsi);
      return 0;

    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
      if (c && !c->authorization.empty()) {
        auto** p = static_cast<unsigned char**>(in);
        unsigned char* end = *p + len;
        if (lws_add_http_header_by_name(
                wsi, reinterpret_cast<const unsigned char*>("authorization:"),
                reinterpret_cast<const unsigned char*>(c->authorization.data()),
                static_cast<int>(c->authorization.size()), p, end)) {
          return -1;
        }
      }
      return 0;

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
      if (c) {
        unsigned status = lws_http_client_http_response(wsi);
        std::string text = in ? std::string(static_cast<const char*>(in), len) : std::string();
        c->wsi = nullptr;
        record(c, [&](Observed& o) {
          o.connectionError = true;
          o.error = text;
          o.httpStatus = status;
          o.closed = true;
        });
      }
      return 0;

    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_CLIENT_RECEIVE: {
      if (!c) return 0;
      if (!c->inMessage) {
        c->rx.clear();
        c->rxBinary = lws_frame_is_binary(wsi) != 0;
        c->inMessage = true;
      }
      c->rx.append(static_cast<const char*>(in), len);
      bool final = lws_is_final_fragment(wsi) != 0;
      record(c, [&](Observed& o) {
        o.bytesReceived += len;
        if (final) {
          o.messages.push_back(
              {c->rxBinary, c->rx.size(), c->rx.size() <= c->keepLimit ? c->rx : std::string()});
        }
      });
      if (final) {
        c->inMessage = false;
        if (c->echo) sendNow(c, OutMsg{c->rxBinary ? MsgKind::Binary : MsgKind::Text, c->rx});
        if (c->onMessage) c->onMessage(*c, c->rxBinary, c->rx);
      }
      return 0;
    }

    case LWS_CALLBACK_RECEIVE_PONG:
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
      if (c) {
        std::string payload(static_cast<const char*>(in), len);
        record(c, [&](Observed& o) { o.pongs.push_back(payload); });
      }
      return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLIENT_WRITEABLE:
      return c ? writeNext(c) : 0;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      if (c) {
        const auto* p = static_cast<const unsigned char*>(in);
        int code = len >= 2 ? (p[0] << 8 | p[1]) : 1005;
        std::string why =
            len > 2 ? std::string(reinterpret_cast<const char*>(p + 2), len - 2) : std::string();
        record(c, [&](Observed& o) {
          o.peerCloseCode = code;
          o.peerCloseReason = why;
        });
      }
      return 0;

    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLIENT_CLOSED:
      if (c) {
        c->wsi = nullptr;
        record(c, [](Observed& o) { o.closed = true; });
      }
      return 0;

    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

bool LwsPeer::writeFrame(Conn* c, const char* data, size_t len, int flags) {
  scratch_.resize(LWS_PRE + len);
  if (len) std::memcpy(scratch_.data() + LWS_PRE, data, len);
  int n = lws_write(c->wsi, scratch_.data() + LWS_PRE, len, static_cast<lws_write_protocol>(flags));
  return n >= static_cast<int>(len);
}

// One lws_write per writeable callback, as lws asks.
int LwsPeer::writeNext(Conn* c) {
  if (c->outq.empty()) return 0;
  OutMsg& m = c->outq.front();
  bool ok = true;
  if (m.kind == MsgKind::Close) {
    lws_close_reason(c->wsi, static_cast<lws_close_status>(m.code),
                     reinterpret_cast<unsigned char*>(m.data.data()), m.data.size());
    c->outq.clear();
    return -1;
  }
  if (m.kind == MsgKind::Ping) {
    ok = writeFrame(c, m.data.data(), m.data.size(), LWS_WRITE_PING);
    c->outq.pop_front();
  } else if (c->pingDue) {
    c->pingDue = false;
    static constexpr char kBetween[] = "between";
    ok = writeFrame(c, kBetween, sizeof kBetween - 1, LWS_WRITE_PING);
  } else {
    size_t n = std::min(c->fragment, m.data.size() - c->outOffset);
    bool first = c->outOffset == 0;
    bool last = c->outOffset + n == m.data.size();
    int flags = lws_write_ws_flags(m.kind == MsgKind::Text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY,
                                   first, last);
    ok = writeFrame(c, m.data.data() + c->outOffset, n, flags);
    c->outOffset += n;
    if (last) {
      c->outOffset = 0;
      c->outq.pop_front();
    } else if (m.pingBetweenFragments) {
      c->pingDue = true;
    }
  }
  if (!ok) return -1;
  if (!c->outq.empty()) lws_callback_on_writable(c->wsi);
  return 0;
}

}  // namespace interop
