// TLS 1.3 on bufferevents: server and client contexts (verification always on for clients) and
// the constructors of TLS bufferevents.
#pragma once

#include <openssl/bn.h>
#include <openssl/x509.h>

#include <string>

#include "common/event.h"

namespace ds {

// Owners of the OpenSSL objects that certificates are built and read with (SSL_CTX and SSL are
// in event.h).
using PkeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, FreeWith<X509_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, FreeWith<X509_EXTENSION_free>>;
using BioPtr = std::unique_ptr<BIO, FreeWith<BIO_free>>;
using BnPtr = std::unique_ptr<BIGNUM, FreeWith<BN_free>>;
using AsnIntPtr = std::unique_ptr<ASN1_INTEGER, FreeWith<ASN1_INTEGER_free>>;

}  // namespace ds

namespace ds::tls {

// Server context from PEM files. On failure returns null and sets `err`.
SslCtxPtr serverContext(const std::string& certPath, const std::string& keyPath, std::string& err);
// Client context trusting the CA certificates in `caPath` (PEM); peer verification is required.
SslCtxPtr clientContext(const std::string& caPath, std::string& err);

// A TLS bufferevent is a filter over a socket bufferevent (bufferevent_get_underlying);
// bufferevent_getfd works on it, but connecting goes through connect() or attachSocket().

// Wraps an accepted socket in a server-side TLS bufferevent.
BufferEventPtr acceptSocket(Loop& loop, SSL_CTX* ctx, evutil_socket_t fd);
// A client-side TLS bufferevent (not yet connected) that verifies the peer certificate against
// `serverName` (DNS name or IP address) and sends it as SNI. Session and callbacks can be set
// until connect() or attachSocket() starts the handshake.
BufferEventPtr newClient(Loop& loop, SSL_CTX* ctx, const std::string& serverName);
// Resolves `host` and connects a bufferevent from newClient(); the handshake follows. Returns
// what bufferevent_socket_connect_hostname returns; failures are also reported as events.
int connect(bufferevent* bev, evdns_base* dns, const std::string& host, int port);
// Gives a bufferevent from newClient() a connected socket (which it then owns) and starts the
// handshake. Returns 0, or -1 if the socket could not be set.
int attachSocket(bufferevent* bev, evutil_socket_t fd);
// The resolver error (an EVUTIL_EAI_* code) of a failed connect(), or 0.
int dnsError(bufferevent* bev);

// Drains this thread's OpenSSL error queue into one line ("unknown OpenSSL error" if empty).
std::string opensslErrors();

// The last OpenSSL error of this thread (and the bufferevent's, when given) as text.
std::string lastError(bufferevent* bev = nullptr);

}  // namespace ds::tls
