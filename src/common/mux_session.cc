// Multiplexed streams on one channel: MuxSession, the state machine of one channel's streams
// (the frame codec is in mux_frame.cc).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "common/mux.h"

namespace ds::mux {

namespace {
Limits sane(Limits l) {
  l.maxStreams = std::max<size_t>(l.maxStreams, 1);
  l.maxPendingOpens = std::max<size_t>(l.maxPendingOpens, 1);
  l.minWindow = std::clamp<uint32_t>(l.minWindow, 1, kMaxWindow);
  l.initialWindow = std::clamp(l.initialWindow, l.minWindow, kMaxWindow);
  l.minInitialWindow = std::clamp(l.minInitialWindow, l.minWindow, l.initialWindow);
  l.maxWindow = std::clamp(l.maxWindow, l.initialWindow, kMaxWindow);
  l.budget = std::max<uint64_t>(l.budget, l.minWindow);
  l.quantum = std::clamp<size_t>(l.quantum, 1, kMaxPayload);
  l.maxControl = std::max<size_t>(l.maxControl, 4096);
  return l;
}
}  // namespace

MuxSession::MuxSession(Role role, const Limits& limits, Callbacks& callbacks)
    : role_(role), limits_(sane(limits)), cb_(callbacks), nextId_(role == Role::Client ? 1 : 2) {}

MuxSession::~MuxSession() {
  if (limits_.pool) limits_.pool->used -= committed_;
}

MuxSession::Stream* MuxSession::find(uint32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

uint32_t MuxSession::windowOf(uint32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? 0 : static_cast<uint32_t>(it->second.target);
}

uint64_t MuxSession::creditOf(uint32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? 0 : it->second.credit;
}

bool MuxSession::seen(uint32_t id) const { return ownId(id) ? id < nextId_ : id <= peerHighest_; }

uint64_t MuxSession::gap(const Stream& s) const {
  if (s.state == State::CloseSent) return 0;
  const uint64_t have = share(s);
  return have >= limits_.minWindow ? 0 : limits_.minWindow - have;
}

void MuxSession::unaccount(const Stream& s) {
  if (s.state == State::CloseSent) return;
  committed_ -= share(s);
  reserve_ -= gap(s);
  if (limits_.pool) limits_.pool->used -= share(s);
}

void MuxSession::account(const Stream& s) {
  if (s.state == State::CloseSent) return;
  committed_ += share(s);
  reserve_ += gap(s);
  if (limits_.pool) limits_.pool->used += share(s);
  if (committed_ + reserve_ > limits_.budget) std::abort();  // the invariant the rest relies on
}

uint64_t MuxSession::grantFor(const Stream& s, uint64_t want) const {
  // Up to its floor a stream always gets what it asks (the reserve holds it); above the floor
  // only while the total stays within the shared half of the budget, so that the other half
  // always admits new streams at their floor (with the defaults, 16,384 of them: maxStreams).
  uint64_t g = std::min(want, gap(s));
  const uint64_t used = committed_ + reserve_;
  const uint64_t soft = shared();
  if (want > g && used < soft) g += std::min({want - g, soft - used, poolRoom()});
  return g;
}

uint64_t MuxSession::poolRoom() const {
  const MemoryPool* p = limits_.pool.get();
  if (!p) return UINT64_MAX;
  return p->used < p->limit ? p->limit - p->used : 0;
}

uint64_t MuxSession::initialTarget() const {
  // (An RTT above a minute counts as a minute: the product stays far from overflow.)
  const auto rtt = static_cast<uint64_t>(std::clamp<int64_t>(rtt_.count(), 0, 60'000'000));
  const uint64_t bdp = limits_.initialRate * rtt / 1'000'000;
  return std::clamp<uint64_t>(bdp, limits_.minInitialWindow, limits_.initialWindow);
}

bool MuxSession::admissible() const {
  return streams_.size() < limits_.maxStreams &&
         limits_.budget - committed_ - reserve_ >= limits_.minWindow;
}

void MuxSession::setState(Stream& s, State state) {
  if (s.state == State::OpenSent) --pendingLocal_;
  if (s.state == State::OpenReceived) --pendingRemote_;
  if (state == State::OpenSent) ++pendingLocal_;
  if (state == State::OpenReceived) ++pendingRemote_;
  if (state == State::CloseSent) {
    unaccount(s);
    s.recvWindow = s.buffered = 0;
    s.wantWrite = false;
  }
  s.state = state;
}

void MuxSession::control(const std::string& frame, bool due) {
  control_ += frame;
  controlDue_ = controlDue_ || due;
  if (control_.size() > limits_.maxControl) {
    fail(close_code::PolicyViolation, "the peer does not read: control frames above the bound");
  }
}

void MuxSession::drop(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  Stream& s = it->second;
  unaccount(s);
  if (s.state == State::OpenSent) --pendingLocal_;
  if (s.state == State::OpenReceived) --pendingRemote_;
  const bool freed = share(s) > 0 && s.state != State::CloseSent;
  streams_.erase(it);
  // ready_, grants_ and starved_ skip ids that are gone (ids are never reused).
  if (freed) retryStarved();
}

void MuxSession::fail(uint16_t code, std::string_view reason) {
  if (failed_) return;
  failCode_ = code;
  failReason_ = std::string(reason);
  shutdown(close_code::GoingAway, "channel failed: " + failReason_);
}

void MuxSession::shutdown(uint16_t code, std::string_view reason) {
  const bool wasFailed = failed_;
  failed_ = true;
  if (!wasFailed && failCode_ == 0) {
    failCode_ = close_code::Normal;
    failReason_ = "shut down";
  }
  std::vector<std::pair<uint32_t, bool>> ids;
  ids.reserve(streams_.size());
  for (const auto& [id, s] : streams_) ids.emplace_back(id, s.state != State::CloseSent);
  std::sort(ids.begin(), ids.end());
  streams_.clear();
  ready_.clear();
  grants_.clear();
  starved_.clear();
  control_.clear();
  controlDue_ = false;
  if (limits_.pool) limits_.pool->used -= committed_;
  committed_ = reserve_ = 0;
  pendingLocal_ = pendingRemote_ = 0;
  for (auto [id, tell] : ids) {
    if (tell) cb_.onClosed(id, code, reason);
  }
}

// ---- the application's side ----

uint32_t MuxSession::open(const OpenRequest& request) {
  if (failed_ || pendingLocal_ >= limits_.maxPendingOpens || nextId_ > kMaxStreamId ||
      !admissible()) {
    return 0;
  }
  const uint32_t id = nextId_;
  Stream& s = streams_[id];
  s.local = true;
  s.state = State::OpenSent;
  ++pendingLocal_;
  s.target = initialTarget();
  account(s);
  const uint64_t grant = grantFor(s, s.target);
  std::string frame;
  if (!appendOpen(frame, id, static_cast<uint32_t>(grant), request)) {
    unaccount(s);
    --pendingLocal_;
    streams_.erase(id);
    return 0;
  }
  nextId_ += 2;
  unaccount(s);
  s.recvWindow = grant;
  account(s);
  control(frame);
  return failed_ ? 0 : id;
}

bool MuxSession::accept(uint32_t id) {
  Stream* s = find(id);
  if (failed_ || !s || s->state != State::OpenReceived) return false;
  setState(*s, State::Open);
  s->target = initialTarget();
  const uint64_t grant = grantFor(*s, s->target);
  unaccount(*s);
  s->recvWindow = grant;
  account(*s);
  if (s->recvWindow < s->target) starve(id, *s);
  std::string frame;
  appendAccept(frame, id, static_cast<uint32_t>(s->recvWindow));
  if (s->wantWrite && s->credit > 0 && !s->ready) {
    s->ready = true;
    ready_.push_back(id);
  }
  control(frame);
  return true;
}

bool MuxSession::reject(uint32_t id, proto::Reject code, std::string_view reason,
                        std::string_view codeText) {
  Stream* s = find(id);
  if (failed_ || !s || s->state != State::OpenReceived) return false;
  std::string frame;
  appendReject(frame, id, code, reason, codeText);
  drop(id);
  control(frame);
  return true;
}

void MuxSession::wantWrite(uint32_t id) {
  Stream* s = find(id);
  if (failed_ || !s || s->state == State::CloseSent || s->eofSent) return;
  s->wantWrite = true;
  if (s->state == State::Open && s->credit > 0 && !s->ready) {
    s->ready = true;
    ready_.push_back(id);
  }
}

void MuxSession::eof(uint32_t id) {
  Stream* s = find(id);
  if (failed_ || !s || s->state == State::CloseSent || s->eofSent || s->eofWanted) return;
  // Eof follows the last bytes onPull gives, so it goes out on the stream's next turn (which
  // needs credit: the application may still hold bytes).
  s->eofWanted = true;
  wantWrite(id);
}

void MuxSession::close(uint32_t id, uint16_t code, std::string_view reason) {
  Stream* s = find(id);
  if (failed_ || !s || s->state == State::CloseSent) return;
  if (s->state == State::OpenReceived) {
    // An open never accepted: refusing it is the same as closing it.
    std::string frame;
    appendReject(frame, id, proto::Reject::Rejected, reason);
    drop(id);
    control(frame);
    return;
  }
  std::string frame;
  // An Eof the application asked for goes before the Close (Close is a control frame and would
  // otherwise pass it): a stream closed normally after its last bytes still shows its end.
  const bool eofNow = s->eofWanted && !s->eofSent;
  if (eofNow) {
    s->eofSent = true;
    appendEof(frame, id);
  }
  appendClose(frame, id, code, reason);
  // After an Eof each way, gone out and come in before this, a normal Close tells the peer
  // only that the id may go: like an answer to its Close, it may wait for other frames.
  const bool due = !(code == close_code::Normal && s->eofReceived && !eofNow && s->eofSent);
  setState(*s, State::CloseSent);
  control(frame, due);
}

void MuxSession::consumed(uint32_t id, size_t n) {
  Stream* s = find(id);
  if (failed_ || !s || s->state == State::CloseSent || n == 0) return;
  n = static_cast<size_t>(std::min<uint64_t>(n, s->buffered));
  if (n == 0) return;
  unaccount(*s);
  s->buffered -= n;
  account(*s);
  // Credit goes back in batches of at least a quarter of the window (as QUIC stacks do), so
  // Window frames stay few. Half-window batches (SSH's rule) let a window-limited stream's
  // credit split into lumps of which only those above half a window are returned at once:
  // such a stream settled at 0.55 windows per round trip, against 0.88 with quarters. A stream
  // below its floor gets its credit back at once.
  const uint64_t have = share(*s);
  if (have + s->target / 4 <= s->target || have < limits_.minWindow) scheduleGrant(id, *s);
  retryStarved();
}

void MuxSession::scheduleGrant(uint32_t id, Stream& s) {
  if (s.grant) return;
  s.grant = true;
  grants_.push_back(id);
}

void MuxSession::starve(uint32_t id, Stream& s) {
  if (s.starved) return;
  s.starved = true;
  starved_.push_back(id);
}

// Memory came free: the streams short of their window try again at the next flush.
void MuxSession::retryStarved() {
  std::deque<uint32_t> ids;
  ids.swap(starved_);
  for (uint32_t id : ids) {
    if (Stream* s = find(id)) {
      s->starved = false;
      scheduleGrant(id, *s);
    }
  }
}

// Autotuning: the bytes that arrived over at least one RTT give the path's bandwidth-delay
// product as this stream sees it; when the peer sent a quarter of the window or more within an
// RTT, the window, not the path, may be what limits the stream: double it, up to maxWindow and
// within the budget's shared part (the rule of quic-go's receive windows). A path-limited stream
// stops between 4 and 8 times its BDP.
void MuxSession::grow(Stream& s, TimePoint now) {
  if (!s.measuring || rtt_.count() <= 0) return;
  const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(now - s.measureStart);
  // Bytes arrive in bursts (a read takes what the socket holds): over one short RTT a burst
  // reads as a rate the path never had, so the rate is taken over kMinMeasure at least.
  if (elapsed < std::max<std::chrono::microseconds>(rtt_, kMinMeasure)) return;
  const uint64_t bdp = s.measured * static_cast<uint64_t>(rtt_.count()) /
                       static_cast<uint64_t>(std::max<int64_t>(elapsed.count(), 1));
  s.measuring = false;
  s.measured = 0;
  if (4 * bdp < s.target || s.target >= limits_.maxWindow) return;
  const uint64_t next = std::min<uint64_t>(s.target * 2, limits_.maxWindow);
  if (committed_ + reserve_ + (next - s.target) > shared() || next - s.target > poolRoom()) return;
  s.target = next;
}

void MuxSession::sendGrants(TimePoint now) {
  std::deque<uint32_t> work;
  work.swap(grants_);
  std::string frames;
  for (uint32_t id : work) {
    Stream* s = find(id);
    if (!s) continue;
    s->grant = false;
    // Credit moves only on open streams; an opener short of its window is topped up on Accept.
    if (s->state != State::Open) continue;
    grow(*s, now);
    const uint64_t have = share(*s);
    if (have >= s->target) continue;
    const uint64_t grant = grantFor(*s, s->target - have);
    if (grant > 0) {
      unaccount(*s);
      s->recvWindow += grant;
      account(*s);
      appendWindow(frames, id, static_cast<uint32_t>(grant));
    }
    if (share(*s) < s->target) starve(id, *s);
  }
  if (!frames.empty()) control(frames);
}

// ---- the channel's side ----

bool MuxSession::receive(const uint8_t* data, size_t len, TimePoint now) {
  while (len > 0 && !failed_) {
    if (in_.empty()) {
      Frame f;
      DecodeResult r = decode(data, len, f);
      if (r.status == DecodeStatus::Invalid) {
        fail(close_code::ProtocolError, r.error);
        break;
      }
      if (r.status == DecodeStatus::NeedMore) {
        in_.assign(reinterpret_cast<const char*>(data), len);
        break;
      }
      data += r.consumed;
      len -= r.consumed;
      if (r.known) handle(f, now);
      continue;
    }
    // A frame began in an earlier piece: take only what completes its header, then its payload.
    size_t need = kHeaderLen > in_.size() ? kHeaderLen - in_.size() : 0;
    if (need == 0) {
      need = kHeaderLen + payloadLength(reinterpret_cast<const uint8_t*>(in_.data())) - in_.size();
    }
    const size_t take = std::min(need, len);
    in_.append(reinterpret_cast<const char*>(data), take);
    data += take;
    len -= take;
    Frame f;
    DecodeResult r = decode(reinterpret_cast<const uint8_t*>(in_.data()), in_.size(), f);
    if (r.status == DecodeStatus::Invalid) {
      fail(close_code::ProtocolError, r.error);
      break;
    }
    if (r.status == DecodeStatus::NeedMore) continue;
    if (r.known) handle(f, now);
    in_.clear();
  }
  return !failed_;
}

void MuxSession::streamError(uint32_t id, uint16_t code, std::string_view reason) {
  Stream* s = find(id);
  if (!s || s->state == State::CloseSent) return;
  const std::string text(reason);
  if (s->state == State::OpenReceived) {
    std::string frame;
    appendReject(frame, id, proto::Reject::BadRequest, text);
    drop(id);
    control(frame);
  } else {
    std::string frame;
    appendClose(frame, id, code, text);
    setState(*s, State::CloseSent);
    control(frame);
  }
  if (!failed_) cb_.onClosed(id, code, text);
}

void MuxSession::handle(const Frame& f, TimePoint now) {
  if (f.type == FrameType::Ping) {
    if ((f.flags & kFlagAck) == 0) {
      std::string frame;
      appendPing(frame, f.ping, true);
      control(frame);
    } else if (pingOutstanding_ && f.ping == pingSeq_) {
      pingOutstanding_ = false;
      auto sample = std::chrono::duration_cast<std::chrono::microseconds>(now - pingSent_);
      sample = std::max(sample, std::chrono::microseconds(1));
      // A ping queued behind Data (ours before it went out, the peer's before its answer) reads
      // the queues, not the path: such a sample may lower the RTT but never raise it. A clean
      // one, with little Data either way since the ping before it, measures the path and
      // replaces what is older (the path's RTT may have grown).
      const bool clean =
          dataOut_ - outAtPrevPing_ <= kCleanPingBytes && dataIn_ - inAtPing_ <= kCleanPingBytes;
      if (clean || sampleCount_ == 0) {
        samples_[sampleCount_++ % samples_.size()] = sample;
        const size_t n = std::min(sampleCount_, samples_.size());
        rtt_ = *std::min_element(samples_.begin(), samples_.begin() + static_cast<long>(n));
      } else {
        rtt_ = std::min(rtt_, sample);
      }
    }
    return;
  }
  if (f.type == FrameType::Open) return onOpenFrame(f);
  Stream* s = find(f.stream);
  if (!s) {
    // A Close crossing our Reject (or our own Close) is late, not wrong.
    if (f.type == FrameType::Close && seen(f.stream)) return;
    return fail(close_code::ProtocolError,
                seen(f.stream) ? "frame on a closed stream" : "frame on an unknown stream");
  }
  if (s->state == State::CloseSent) {
    // We closed it; until the peer's Close or Reject arrives, what it sent before is dropped.
    if (f.type == FrameType::Close || f.type == FrameType::Reject) drop(f.stream);
    return;
  }
  const uint32_t id = f.stream;
  switch (f.type) {
    case FrameType::Accept:
      if (s->state != State::OpenSent) {
        return streamError(id, close_code::ProtocolError, "accept on a stream not awaiting one");
      }
      setState(*s, State::Open);
      s->credit = f.window;
      if (s->wantWrite && s->credit > 0 && !s->ready) {
        s->ready = true;
        ready_.push_back(id);
      }
      if (share(*s) < s->target) scheduleGrant(id, *s);
      cb_.onAccepted(id);
      return;
    case FrameType::Reject:
      if (s->state != State::OpenSent) {
        return streamError(id, close_code::ProtocolError, "reject on a stream not awaiting one");
      }
      drop(id);
      cb_.onRejected(id, f.reject, f.codeText, f.reason);
      return;
    case FrameType::Data:
      return onDataFrame(f, now);
    case FrameType::Eof:
      if (s->state != State::Open || s->eofReceived) {
        return streamError(id, close_code::ProtocolError, "eof before accept or twice");
      }
      s->eofReceived = true;
      cb_.onEof(id);
      return;
    case FrameType::Close: {
      // The peer ends the stream: answer with the same code, and the id is free on both sides.
      std::string frame;
      appendClose(frame, id, f.closeCode, f.reason);
      const uint16_t code = f.closeCode;
      drop(id);
      control(frame, false);
      if (!failed_) cb_.onClosed(id, code, f.reason);
      return;
    }
    case FrameType::Window:
      if (s->state != State::Open) {
        return streamError(id, close_code::ProtocolError, "window before accept");
      }
      s->credit += f.window;
      if (s->credit > kMaxWindow) {
        return streamError(id, close_code::ProtocolError, "credit above 2^31-1");
      }
      if (s->wantWrite && !s->ready) {
        s->ready = true;
        ready_.push_back(id);
      }
      return;
    default:
      return;
  }
}

void MuxSession::onOpenFrame(const Frame& f) {
  const uint32_t id = f.stream;
  if (ownId(id)) return fail(close_code::ProtocolError, "open with an id of our parity");
  if (id <= peerHighest_) return fail(close_code::ProtocolError, "open of an id already used");
  peerHighest_ = id;
  std::string frame;
  if (!admissible()) {
    appendReject(frame, id, proto::Reject::TooManyStreams, "too many streams on this channel");
    return control(frame);
  }
  if (pendingRemote_ >= limits_.maxPendingOpens) {
    appendReject(frame, id, proto::Reject::TooManyPending, "too many opens awaiting an answer");
    return control(frame);
  }
  Stream& s = streams_[id];
  s.state = State::OpenReceived;
  ++pendingRemote_;
  s.credit = f.window;
  s.target = initialTarget();
  account(s);  // reserves the stream's floor
  cb_.onOpen(id, f.request);
}

void MuxSession::onDataFrame(const Frame& f, TimePoint now) {
  const uint32_t id = f.stream;
  Stream* s = find(id);
  if (s->state != State::Open) {
    return streamError(id, close_code::ProtocolError, "data before accept");
  }
  if (s->eofReceived) return streamError(id, close_code::ProtocolError, "data after eof");
  if (f.dataLen > s->recvWindow) {
    return streamError(id, close_code::ProtocolError, "data beyond the window");
  }
  if (f.dataLen == 0) return;
  // recvWindow and buffered trade bytes: the stream's share stays the same.
  s->recvWindow -= f.dataLen;
  s->buffered += f.dataLen;
  if (!s->measuring) {
    s->measuring = true;
    s->measureStart = now;
  }
  s->measured += f.dataLen;
  dataIn_ += f.dataLen;
  // While data flows in bulk the RTT is sampled often (at most every busyPingInterval), so that
  // the window growth judges the path as it is now, not as it was when the channel was idle.
  // Sparse data (keystrokes) is no reason: a ping and its answer per keystroke on each leg
  // would triple an interactive session's messages.
  if (!pingOutstanding_ && dataIn_ - inAtPing_ >= kBusyPingBytes &&
      now - lastPing_ >= limits_.busyPingInterval) {
    ping(now);
  }
  cb_.onData(id, f.data, f.dataLen);
}

size_t MuxSession::flush(std::string& out, size_t max, TimePoint now) {
  // In pieces of at most kPiece bytes, each with room for every control frame waiting (the
  // Window frames due now among them), until `max` bytes or nothing more to send.
  constexpr size_t kPiece = 64 * 1024;
  const size_t start = out.size();
  size_t total = 0;
  while (!failed_ && (total < max || !control_.empty() || !grants_.empty())) {
    sendGrants(now);
    const size_t cap =
        std::max(std::min(max > total ? max - total : 0, kPiece), control_.size() + kHeaderLen);
    out.resize(start + total + cap);
    const size_t n = flush(reinterpret_cast<uint8_t*>(out.data() + start + total), cap, now);
    total += n;
    out.resize(start + total);
    if (n == 0) break;
  }
  return total;
}

// Whole control frames from the front of control_, as many as fit in `room`.
size_t MuxSession::takeControl(uint8_t* buf, size_t room) {
  size_t n = 0;
  while (control_.size() - n >= kHeaderLen) {
    const size_t len =
        kHeaderLen + payloadLength(reinterpret_cast<const uint8_t*>(control_.data() + n));
    if (n + len > room) break;
    n += len;
  }
  std::memcpy(buf, control_.data(), n);
  control_.erase(0, n);
  if (control_.empty()) controlDue_ = false;
  return n;
}

size_t MuxSession::flush(uint8_t* buf, size_t cap, TimePoint now) {
  if (failed_) return 0;
  sendGrants(now);
  if (failed_) return 0;
  size_t used = takeControl(buf, cap);
  // Data goes out only after every control frame queued before it: an ACCEPT left for the next
  // message would arrive after its stream's first DATA.
  if (!control_.empty()) return used;
  while (!ready_.empty() && !failed_) {
    if (used + kHeaderLen >= cap) break;
    const uint32_t id = ready_.front();
    ready_.pop_front();
    Stream* s = find(id);
    if (!s) continue;
    s->ready = false;
    if (s->state != State::Open || !s->wantWrite || s->credit == 0) continue;
    const size_t ask = static_cast<size_t>(
        std::min<uint64_t>({limits_.quantum, s->credit, cap - used - kHeaderLen}));
    // The application writes the payload in place; the header goes before it once its length
    // is known.
    const size_t got = cb_.onPull(id, buf + used + kHeaderLen, ask);
    if (got > ask) std::abort();  // the application broke onPull's contract
    if (got > 0) {
      writeDataHeader(buf + used, id, got);
      used += kHeaderLen + got;
    }
    s = find(id);
    if (failed_ || !s || s->state != State::Open) continue;
    s->credit -= got;
    dataOut_ += got;
    if (got == ask) {
      if (s->credit > 0) {
        s->ready = true;
        ready_.push_back(id);
      }
    } else {
      s->wantWrite = false;
      if (s->eofWanted && !s->eofSent) {
        // After the stream's last bytes: as a control frame, it still follows them.
        s->eofSent = true;
        std::string frame;
        appendEof(frame, id);
        control(frame);
      }
    }
  }
  // Control frames the application produced inside onPull (a close, say) go out too.
  if (!failed_) used += takeControl(buf + used, cap - used);
  return failed_ ? 0 : used;
}

bool MuxSession::wantsFlush() const {
  return !failed_ && (!control_.empty() || !grants_.empty() || !ready_.empty());
}

bool MuxSession::flushDue() const {
  return !failed_ && (controlDue_ || !grants_.empty() || !ready_.empty());
}

void MuxSession::tick(TimePoint now) {
  if (failed_ || pingOutstanding_) return;
  if (pinged_ && now - lastPing_ < limits_.pingInterval) return;
  ping(now);
}

void MuxSession::ping(TimePoint now) {
  pinged_ = true;
  pingOutstanding_ = true;
  lastPing_ = pingSent_ = now;
  outAtPrevPing_ = std::exchange(outAtPing_, dataOut_);
  inAtPing_ = dataIn_;
  std::string frame;
  appendPing(frame, ++pingSeq_, false);
  control(frame);
}

}  // namespace ds::mux
