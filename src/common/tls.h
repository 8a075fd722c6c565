// TLS 1.3 on bufferevents: server and client contexts (verification always on for clients) and
// the constructors of TLS bufferevents.
#pragma once

#include <string>

#include "common/event.h"

namespace ds::tls {

// Server context from PEM files. On failure returns null and sets `err`.
SslCtxPtr serverContext(const std::string& certPath, const std::string& keyPath, std::string& err);
// Client context trusting the CA certificates in `caPath` (PEM); peer verification is required.
SslCtxPtr clientContext(const std::string& caPath, std::string& err);

// Wraps an accepted socket in a server-side TLS bufferevent.
BufferEventPtr acceptSocket(Loop& loop, SSL_CTX* ctx, evutil_socket_t fd);
// A client-side TLS bufferevent (not yet connected) that verifies the peer certificate against
// `serverName` (DNS name or IP address) and sends it as SNI.
BufferEventPtr newClient(Loop& loop, SSL_CTX* ctx, const std::string& serverName);

// Drains this thread's OpenSSL error queue into one line ("unknown OpenSSL error" if empty).
std::string opensslErrors();

// The last OpenSSL error of this thread (and the bufferevent's, when given) as text.
std::string lastError(bufferevent* bev = nullptr);

}  // namespace ds::tls
