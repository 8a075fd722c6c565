// Streams multiplexed on one WebSocket channel (docs/mux.md): the frames as types with a total
// binary codec (bytes in, a frame or a precise refusal out; it never throws and trusts no length
// or type), and MuxSession, the pure state machine of one channel's streams with per-stream
// credit-based flow control, a per-channel receive memory budget and receive windows that grow
// with the measured bandwidth-delay product. No sockets and no event loop: bytes and the time
// go in, frames and callbacks come out, so all of it is unit-testable and fuzzable.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/protocol.h"

namespace ds::mux {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// ---- frames ------------------------------------------------------------------------------

enum class FrameType : uint8_t {
  Open = 0x1,    // a new stream with its request and the opener's receive window
  Accept = 0x2,  // the stream is up; the acceptor's receive window
  Reject = 0x3,  // the stream is refused (a proto::Reject wire name and a reason)
  Data = 0x4,    // bytes, within the receiver's window
  Eof = 0x5,     // no more bytes in the sender's direction (half-close)
  Close = 0x6,   // the stream ends (a WebSocket close code and a reason)
  Window = 0x7,  // more credit for the peer: the receive window grows by the increment
  Ping = 0x8,    // stream 0 only: 8 opaque bytes, answered with the Ack flag (RTT)
};

inline constexpr size_t kHeaderLen = 8;  // type, flags, length (16 bits), stream id (32 bits)
inline constexpr size_t kMaxPayload = 16384;
inline constexpr uint32_t kMaxWindow = 0x7fffffff;  // credit never exceeds 2^31 - 1
inline constexpr uint32_t kMaxStreamId = 0x7fffffff;
inline constexpr uint8_t kFlagAck = 0x1;  // on Ping: this is the answer
// How long output that is not due (MuxSession::flushDue) may wait for other frames.
inline constexpr std::chrono::milliseconds kAnswerDelay{20};

// The request an Open carries: where the stream goes and on whose behalf (as in
// proto::StreamRequest / proto::ServiceRequest). A field that does not apply is empty: `device`
// on the service channel only; a Unix socket target has `socketPath` and port 0.
struct OpenRequest {
  std::string device;
  std::string host;
  uint16_t port = 0;
  std::string socketPath;
  std::string policy;
  std::string user;
  std::string name;
  // The hub's id of the stream (toward a device), so the device's log lines name the stream the
  // hub's audit records; empty from a service.
  std::string streamId{};
  bool operator==(const OpenRequest&) const = default;
};

// One decoded frame. Fields not used by `type` keep their defaults; `data` points into the
// decoded input and is valid while that input is.
struct Frame {
  FrameType type = FrameType::Data;
  uint8_t rawType = 0;  // as on the wire (a frame of an unknown type is skipped)
  uint8_t flags = 0;
  uint32_t stream = 0;
  uint32_t window = 0;  // Open, Accept: initial window; Window: increment
  OpenRequest request;  // Open
  proto::Reject reject = proto::Reject::Other;
  std::string codeText;  // Reject: the code as sent
  uint16_t closeCode = 0;
  std::string reason;             // Reject, Close
  const uint8_t* data = nullptr;  // Data payload
  size_t dataLen = 0;
  uint64_t ping = 0;  // Ping payload
};

enum class DecodeStatus { NeedMore, Invalid, Done };
// NeedMore and Invalid report consumed == 0; Done reports the whole frame. Invalid is reported
// as soon as the bytes that show it are there (a header with a bad length or stream id is
// Invalid before its payload arrives). `error` is a static sentence for Invalid, else nullptr.
// Done with known == false is a frame of a type this version does not know: skip it.
struct DecodeResult {
  DecodeStatus status = DecodeStatus::NeedMore;
  size_t consumed = 0;
  const char* error = nullptr;
  bool known = true;
};
// Decodes the frame at the start of `data`. `out` is written only on Done.
DecodeResult decode(const uint8_t* data, size_t len, Frame& out);

// Encoders append one whole frame to `out` and never throw on bad input: text fields are cut
// to their bounds at a UTF-8 boundary (invalid UTF-8 replaced); an Open whose fields exceed
// their bounds is refused (false, nothing appended).
bool appendOpen(std::string& out, uint32_t stream, uint32_t window, const OpenRequest& req);
void appendAccept(std::string& out, uint32_t stream, uint32_t window);
// `code` goes on the wire by its name (proto::name); `codeText` overrides it when not empty
// (a code passed on as another peer sent it).
void appendReject(std::string& out, uint32_t stream, proto::Reject code, std::string_view reason,
                  std::string_view codeText = {});
void appendData(std::string& out, uint32_t stream, const uint8_t* data, size_t len);
void appendEof(std::string& out, uint32_t stream);
void appendClose(std::string& out, uint32_t stream, uint16_t code, std::string_view reason);
void appendWindow(std::string& out, uint32_t stream, uint32_t increment);
void appendPing(std::string& out, uint64_t opaque, bool ack);
// The payload length a frame header declares (reads its first 4 bytes).
size_t payloadLength(const uint8_t* header);
// Writes a Data header for `len` (<= kMaxPayload) payload bytes into `out` (kHeaderLen bytes).
void writeDataHeader(uint8_t* out, uint32_t stream, size_t len);

// ---- session -----------------------------------------------------------------------------

// Close codes on streams: those of a stream WebSocket today (docs/protocol.md "Streams"), so a
// bridge between a multiplexed side and a one-WebSocket-per-stream side passes them unchanged.
namespace close_code {
inline constexpr uint16_t Normal = 1000, GoingAway = 1001, ProtocolError = 1002,
                          PolicyViolation = 1008, InternalError = 1011;
}  // namespace close_code

// Receive memory shared by all the channels of a process (the hub's `stream_memory`): above
// their floors, windows are granted only while the channels' shares together stay below
// `limit`, so that many channels' budgets cannot add up to more than the process can hold.
struct MemoryPool {
  explicit MemoryPool(uint64_t limit) : limit(limit) {}
  uint64_t limit;
  uint64_t used = 0;  // the sum of every session's committed receive memory
};

struct Limits {
  size_t maxStreams = 16384;      // streams alive at once, both directions
  size_t maxPendingOpens = 128;   // opens not yet answered, each direction
  uint32_t minWindow = 4 * 1024;  // receive window every live stream can always reach
  // A new stream's receive window covers `initialRate` over the channel's RTT, between
  // minInitialWindow and initialWindow: a short path gets a small window (bytes beyond its
  // bandwidth-delay product only queue in the channel's buffers, ahead of every other stream),
  // a wide-area one starts where growth would otherwise take several round trips to reach.
  uint32_t minInitialWindow = 256 * 1024;
  uint32_t initialWindow = 2048 * 1024;
  uint64_t initialRate = 64 << 20;  // bytes per second
  uint32_t maxWindow = 16 << 20;    // how far autotuning grows one stream's window
  uint64_t budget = 128 << 20;      // receive memory committed over all streams
  size_t quantum = kMaxPayload;     // Data bytes per stream per round-robin turn
  size_t maxControl = 1 << 20;      // control frames waiting to be sent
  std::chrono::milliseconds pingInterval{5000};
  std::chrono::milliseconds busyPingInterval{100};  // while Data arrives in bulk
  std::shared_ptr<MemoryPool> pool;                 // none: the channel's budget alone
};

// Which ids a side opens: the WebSocket client of the channel odd ones, the server even ones.
enum class Role { Client, Server };

// One channel's streams. Driven by receive() (bytes from the peer, in any pieces), flush()
// (bytes for the peer) and the application's calls; everything it needs from the application
// comes through Callbacks. Callbacks may call back into the session (accept inside onOpen,
// close inside onData, ...). After a channel error the session is dead: receive() and flush()
// do nothing, and the owner closes the WebSocket with channelCloseCode().
class MuxSession {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // The peer opened stream `id`: answer with accept() or reject(), now or later.
    virtual void onOpen(uint32_t id, const OpenRequest& request) = 0;
    // Our open was accepted or refused (final: the id is gone after onRejected).
    virtual void onAccepted(uint32_t id) = 0;
    virtual void onRejected(uint32_t id, proto::Reject code, std::string_view codeText,
                            std::string_view reason) = 0;
    // Bytes for the stream. They count against the stream's window until the application
    // reports them consumed (consumed()), which is what returns credit to the peer.
    virtual void onData(uint32_t id, const uint8_t* data, size_t len) = 0;
    // The peer sends nothing more on the stream.
    virtual void onEof(uint32_t id) = 0;
    // The peer closed the stream, or the session did (a stream protocol error, the channel
    // ended). Final: the id is gone.
    virtual void onClosed(uint32_t id, uint16_t code, std::string_view reason) = 0;
    // Fill `buf` with up to `max` bytes the stream has to send; return how many (0: none now,
    // call wantWrite() when there are).
    virtual size_t onPull(uint32_t id, uint8_t* buf, size_t max) = 0;
  };

  MuxSession(Role role, const Limits& limits, Callbacks& callbacks);
  ~MuxSession();
  MuxSession(const MuxSession&) = delete;
  MuxSession& operator=(const MuxSession&) = delete;

  // ---- the application's side ----
  // Opens a stream; 0 when the limits leave no room (streams, pending opens, ids).
  uint32_t open(const OpenRequest& request);
  // Answers a peer's open. False when `id` is not a pending open of the peer.
  bool accept(uint32_t id);
  // `codeText`, when not empty, goes on the wire instead of code's name (a code passed on as
  // another peer sent it).
  bool reject(uint32_t id, proto::Reject code, std::string_view reason,
              std::string_view codeText = {});
  // The stream has bytes to send: they are pulled (onPull) in flush() as credit allows.
  void wantWrite(uint32_t id);
  // No more bytes after those onPull will still give: Eof follows them.
  void eof(uint32_t id);
  // Ends the stream (Close with `code`; a peer's open not yet accepted is refused with Reject
  // `rejected` instead); no callback follows for it.
  void close(uint32_t id, uint16_t code, std::string_view reason);
  // The application is done with `n` bytes of onData: their memory is free again.
  void consumed(uint32_t id, size_t n);
  // The channel ended: every stream gets onClosed(code, reason). The session is dead after.
  void shutdown(uint16_t code, std::string_view reason);

  // ---- the channel's side ----
  // Feeds bytes from the peer. Returns false once the channel has failed (see channelError()).
  bool receive(const uint8_t* data, size_t len, TimePoint now);
  // Writes whole frames for the peer into `buf`, at most `cap` bytes: control frames first,
  // then Data round-robin across ready streams in quanta (each pulled straight into `buf`),
  // until `cap` is reached or nothing is ready; no Data while control frames queued before it
  // wait (a stream's Accept goes before its first Data). `cap` must hold the largest control
  // frame (an Open, about 1 KiB). Returns the bytes written. Send them as one binary WebSocket
  // message.
  size_t flush(uint8_t* buf, size_t cap, TimePoint now);
  // The same, appended to `out`: at least every control frame waiting, and `max` bytes in all.
  size_t flush(std::string& out, size_t max, TimePoint now);
  // Whether flush() has something to send.
  bool wantsFlush() const;
  // Whether some of it should go now. Not when all that waits is answers to the peer's CLOSE:
  // they only let the peer forget ids, so they may wait (kAnswerDelay) for other frames to go
  // out with, as TCP's delayed ACK does, saving a message each way per stream.
  bool flushDue() const;
  // Pings when an RTT sample is due (the first right away); call every pingInterval or so.
  void tick(TimePoint now);
  // An RTT from elsewhere (the WebSocket's pings, TCP_INFO); mux pings refine it.
  void setRtt(std::chrono::microseconds rtt) { rtt_ = rtt; }

  // ---- state ----
  bool failed() const { return failed_; }
  uint16_t channelCloseCode() const { return failCode_; }
  const std::string& channelError() const { return failReason_; }
  size_t streams() const { return streams_.size(); }
  // Receive memory promised to the peer: windows granted plus bytes not yet consumed.
  uint64_t committed() const { return committed_; }
  std::chrono::microseconds rtt() const { return rtt_; }
  // A stream's current receive window target and send credit (0 for an unknown id).
  uint32_t windowOf(uint32_t id) const;
  uint64_t creditOf(uint32_t id) const;
  size_t controlPending() const { return control_.size(); }

 private:
  enum class State { OpenSent, OpenReceived, Open, CloseSent };
  struct Stream {
    State state = State::Open;
    bool local = false;        // we opened it
    uint64_t credit = 0;       // bytes we may send
    uint64_t recvWindow = 0;   // bytes the peer may still send us
    uint64_t buffered = 0;     // delivered, not yet consumed
    uint64_t target = 0;       // receive window we aim to keep granted
    TimePoint measureStart{};  // autotuning: bytes received since then
    uint64_t measured = 0;
    bool measuring = false;
    bool wantWrite = false;  // the application has bytes to pull
    bool ready = false;      // in ready_
    bool grant = false;      // in grants_
    bool starved = false;    // in starved_
    bool eofWanted = false;  // eof() called, Eof not yet sent
    bool eofSent = false;
    bool eofReceived = false;
  };

  void handle(const Frame& f, TimePoint now);
  void onOpenFrame(const Frame& f);
  void onDataFrame(const Frame& f, TimePoint now);
  // Closes the stream from our side with a Close frame and tells the application.
  void streamError(uint32_t id, uint16_t code, std::string_view reason);
  void fail(uint16_t code, std::string_view reason);
  void drop(uint32_t id);
  bool ownId(uint32_t id) const { return (id & 1) == (role_ == Role::Client ? 1u : 0u); }
  bool seen(uint32_t id) const;
  // Receive memory accounting (see docs/mux.md "Budget"): a stream's share is its granted
  // window plus its unconsumed bytes; every live stream keeps minWindow of it reserved.
  uint64_t share(const Stream& s) const { return s.recvWindow + s.buffered; }
  // The part of the budget that windows above the floor may use: half of it.
  uint64_t shared() const { return limits_.budget / 2; }
  // What the process-wide pool has left for windows above the floor (all of it without one).
  uint64_t poolRoom() const;
  uint64_t gap(const Stream& s) const;
  void unaccount(const Stream& s);
  void account(const Stream& s);
  uint64_t grantFor(const Stream& s, uint64_t want) const;
  bool admissible() const;
  uint64_t initialTarget() const;
  void setState(Stream& s, State state);
  void grow(Stream& s, TimePoint now);
  void scheduleGrant(uint32_t id, Stream& s);
  void starve(uint32_t id, Stream& s);
  void retryStarved();
  void sendGrants(TimePoint now);
  void ping(TimePoint now);
  // `due`: false for frames that may wait for others (flushDue).
  void control(const std::string& frame, bool due = true);
  size_t takeControl(uint8_t* buf, size_t room);
  Stream* find(uint32_t id);

  Role role_;
  Limits limits_;
  Callbacks& cb_;
  std::unordered_map<uint32_t, Stream> streams_;
  std::deque<uint32_t> ready_;    // streams with bytes to pull, round-robin
  std::deque<uint32_t> grants_;   // streams owed a Window
  std::deque<uint32_t> starved_;  // streams short of their window for want of budget
  std::string control_;           // control frames not yet flushed
  bool controlDue_ = false;       // control_ holds a frame that should not wait
  std::string in_;                // a partial frame from the peer
  uint32_t nextId_;
  uint32_t peerHighest_ = 0;  // highest id the peer opened
  size_t pendingLocal_ = 0, pendingRemote_ = 0;
  uint64_t committed_ = 0;  // sum of share() over live streams
  uint64_t reserve_ = 0;    // sum of gap() over live streams
  bool failed_ = false;
  uint16_t failCode_ = 0;
  std::string failReason_;
  // RTT: the lower of the last two clean ping samples (queueing behind bulk data only adds);
  // a ping is clean when at most kCleanPingBytes of Data went each way around it.
  static constexpr uint64_t kCleanPingBytes = 64 * 1024;
  // Data received since the last ping that makes an early (busy) ping worth its round trip.
  static constexpr uint64_t kBusyPingBytes = 64 * 1024;
  // The shortest interval a stream's arrival rate is measured over (window growth).
  static constexpr std::chrono::microseconds kMinMeasure{10000};
  std::chrono::microseconds rtt_{0};
  uint64_t dataIn_ = 0, dataOut_ = 0;  // Data payload bytes received and sent
  uint64_t inAtPing_ = 0, outAtPing_ = 0, outAtPrevPing_ = 0;
  std::array<std::chrono::microseconds, 2> samples_{};
  size_t sampleCount_ = 0;
  bool pingOutstanding_ = false;
  uint64_t pingSeq_ = 0;
  TimePoint pingSent_{}, lastPing_{};
  bool pinged_ = false;
};

}  // namespace ds::mux
