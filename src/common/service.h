// How a long-running program (devstreamsd, devstreams-agent) is run: in a terminal or console,
// or on Windows under the Service Control Manager. The program's main() hands its real body to
// run(); the body stops on SIGINT/SIGTERM through Loop::onSignals on every platform.
#pragma once

#include <string>

namespace ds::service {

using Body = int (*)(int argc, char** argv);

// POSIX: body(argc, argv).
// Windows, with `--service` among the arguments (the services' command line): connects to the
// SCM as service `name`, runs body with the other arguments on the service thread, logs to
// %ProgramData%\devstreams\log\<name>.log and warnings and errors to the Application Event Log
// (source <name>), turns the SCM's stop and shutdown requests into SIGTERM, sets the service's
// failure actions (restart after 5 s, 30 s, 60 s) and reports SERVICE_STOPPED with body's exit
// code. Without `--service`: body in the console, Ctrl-C as SIGINT, Ctrl-Break, closing the
// console, log-off and shutdown as SIGTERM.
int run(const char* name, int argc, char** argv, Body body);

// A start-up failure: "<name>: <message>" on stderr and, in a service, in the log file and the
// Event Log (a service has no stderr of its own).
void startError(const std::string& message);

// The program is up (listening): SERVICE_RUNNING for the SCM. Nothing outside a service.
void reportRunning();

}  // namespace ds::service
