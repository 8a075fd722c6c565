// libwebsockets as an independent WebSocket peer for the interoperability tests: one lws context
// (a TLS server on 127.0.0.1, TLS client connections, or both) serviced by its own thread.
// The test thread describes connections and queues work for the lws thread; what lws observed is
// read back under a mutex.
#pragma once

#include <libwebsockets.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace interop {

enum class MsgKind { Text, Binary, Ping, Close };

// Something for lws to send on a connection.
struct OutMsg {
  MsgKind kind = MsgKind::Binary;
  std::string data;   // payload; for Close the reason
  uint16_t code = 0;  // Close only
  // Text/Binary: a ping goes out between each pair of frames of this message.
  bool pingBetweenFragments = false;
};

struct Received {
  bool binary = false;
  size_t size = 0;
  std::string data;  // the payload when it is at most Conn::keepLimit bytes
};

// What lws saw on one connection. Written on the lws thread under the peer's mutex; read with
// LwsPeer::with().
struct Observed {
  bool established = false;
  bool closed = false;           // the connection is gone (closed, or failed to connect)
  bool connectionError = false;  // a client connection that never became a WebSocket
  std::string error;             // lws's description of that failure
  unsigned httpStatus = 0;       // the HTTP status lws read for that failure, when it has one
  int peerCloseCode = -1;        // code of a close frame the other side started; 1005 if none
  std::string peerCloseReason;
  std::vector<Received> messages;  // complete messages, in order
  uint64_t bytesReceived = 0;
  std::vector<std::string> pongs;  // payloads of pongs received
};

class LwsPeer;

// One lws connection. The settings are made before the connection is handed to lws and are then
// used on the lws thread only, as is the lws state below them; `obs` is shared under the mutex.
struct Conn {
  // Client connections: where to connect and what to send in the upgrade.
  std::string address = "127.0.0.1";
  int port = 0;
  std::string host = "localhost";  // Host header, SNI and certificate name
  std::string path = "/";
  std::string authorization;  // value of an Authorization header, when not empty

  bool echo = false;            // send every received message straight back
  size_t keepLimit = 4096;      // received messages up to this size are kept whole in `obs`
  size_t fragment = 32 * 1024;  // largest frame payload lws sends
  // Both run on the lws thread.
  std::function<void(Conn&, bool binary, const std::string& data)> onMessage;
  std::function<void(Conn&)> onEstablished;

  LwsPeer* peer = nullptr;
  lws* wsi = nullptr;
  std::string rx;
  bool rxBinary = false;
  bool inMessage = false;
  std::deque<OutMsg> outq;
  size_t outOffset = 0;
  bool pingDue = false;

  Observed obs;
};

class LwsPeer {
 public:
  struct Options {
    bool listen = false;            // a TLS WebSocket server on 127.0.0.1, ephemeral port
    std::string certPath, keyPath;  // the server's certificate and key
    std::string caPath;             // what client connections trust
    bool serverEcho = true;         // accepted connections echo what they receive
  };

  explicit LwsPeer(const Options& options);
  ~LwsPeer();
  LwsPeer(const LwsPeer&) = delete;
  LwsPeer& operator=(const LwsPeer&) = delete;

  bool ok() const { return ctx_ != nullptr; }
  int port() const { return port_; }

  // Any thread.
  Conn* newConn();
  void connect(Conn* c);         // starts the client connection `c` describes
  void send(Conn* c, OutMsg m);  // queues `m` on `c`
  void post(std::function<void()> task);
  Conn* accepted(size_t i);  // the i-th connection the server accepted, or null
  template <class F>
  auto with(const Conn* c, F f) {
    std::lock_guard<std::mutex> lock(mu_);
    return f(c->obs);
  }

  // The lws thread.
  void connectNow(Conn* c);
  void sendNow(Conn* c, OutMsg m);

 private:
  static int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
  int handle(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
  int writeNext(Conn* c);
  bool writeFrame(Conn* c, const char* data, size_t len, int flags);
  void runTasks();
  template <class F>
  void record(Conn* c, F f) {
    std::lock_guard<std::mutex> lock(mu_);
    f(c->obs);
  }

  Options options_;
  lws_protocols protocols_[2]{};
  lws_context* ctx_ = nullptr;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::deque<std::function<void()>> tasks_;   // guarded by mu_
  std::vector<std::unique_ptr<Conn>> conns_;  // guarded by mu_
  std::vector<Conn*> accepted_;               // guarded by mu_
  std::vector<unsigned char> scratch_;        // lws thread
};

}  // namespace interop
