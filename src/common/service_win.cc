// Windows side of service.h: ServiceMain, the control handler and the console control handler.
#ifdef _WIN32
#include <windows.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/platform.h"
#include "common/service.h"

namespace ds::service {
namespace {

struct State {
  std::string name;
  Body body = nullptr;
  std::vector<char*> args;  // argv without --service
  SERVICE_STATUS_HANDLE handle = nullptr;
  SERVICE_STATUS status{};
  HANDLE eventSource = nullptr;
  FILE* log = nullptr;
  int exitCode = 0;
};
State gState;

void setStatus(DWORD state, DWORD waitHintMs = 0) {
  if (!gState.handle) return;
  gState.status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
  gState.status.dwCurrentState = state;
  gState.status.dwControlsAccepted =
      state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN : 0;
  gState.status.dwWaitHint = waitHintMs;
  if (state == SERVICE_RUNNING || state == SERVICE_STOPPED) {
    gState.status.dwCheckPoint = 0;
  } else {
    ++gState.status.dwCheckPoint;
  }
  SetServiceStatus(gState.handle, &gState.status);
}

// Every line to the log file; warnings and errors also to the Event Log.
void serviceSink(Level level, std::string_view line) {
  if (gState.log) {
    std::fwrite(line.data(), 1, line.size(), gState.log);
    std::fflush(gState.log);
  }
  if (gState.eventSource && level >= Level::Warn) {
    std::string text(line);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    const char* strings[] = {text.c_str()};
    WORD type = level == Level::Error ? EVENTLOG_ERROR_TYPE : EVENTLOG_WARNING_TYPE;
    ReportEventA(gState.eventSource, type, 0, 0, nullptr, 1, 0, strings, nullptr);
  }
}

DWORD WINAPI onControl(DWORD control, DWORD, void*, void*) {
  switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
      // Streams are closed by the program's SIGTERM path; the loop then ends and body returns.
      setStatus(SERVICE_STOP_PENDING, 10000);
      std::raise(SIGTERM);
      return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
      return NO_ERROR;
    default:
      return ERROR_CALL_NOT_IMPLEMENTED;
  }
}

// Restart after 5 s, 30 s and 60 s; the failure count resets after a day without failures.
void setFailureActions() {
  SC_HANDLE scm = OpenSCManagerA(nullptr, nullptr, SC_MANAGER_CONNECT);
  if (!scm) return;
  SC_HANDLE svc = OpenServiceA(scm, gState.name.c_str(), SERVICE_CHANGE_CONFIG | SERVICE_START);
  if (svc) {
    SC_ACTION actions[3] = {
        {SC_ACTION_RESTART, 5000}, {SC_ACTION_RESTART, 30000}, {SC_ACTION_RESTART, 60000}};
    SERVICE_FAILURE_ACTIONSA fa{};
    fa.dwResetPeriod = 24 * 3600;
    fa.cActions = 3;
    fa.lpsaActions = actions;
    if (!ChangeServiceConfig2A(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &fa)) {
      LOG_WARN("cannot set the service's failure actions (error %lu)", GetLastError());
    }
    // A non-zero exit code counts as a failure too, not only a crash.
    SERVICE_FAILURE_ACTIONS_FLAG flag{TRUE};
    ChangeServiceConfig2A(svc, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &flag);
    CloseServiceHandle(svc);
  }
  CloseServiceHandle(scm);
}

void WINAPI serviceMain(DWORD, char**) {
  gState.handle = RegisterServiceCtrlHandlerExA(gState.name.c_str(), &onControl, nullptr);
  if (!gState.handle) return;
  setStatus(SERVICE_START_PENDING, 10000);

  gState.eventSource = RegisterEventSourceA(nullptr, gState.name.c_str());
  std::string dir = platform::joinPath(platform::systemConfigDir(), "log");
  std::string err;
  std::string path = platform::joinPath(dir, gState.name + ".log");
  if (platform::makePrivateDir(dir, err) && !(gState.log = std::fopen(path.c_str(), "ab"))) {
    err = "cannot open " + path;
  }
  setLogSink(&serviceSink);
  if (!err.empty()) LOG_WARN("no log file: %s", err.c_str());
  setFailureActions();

  gState.exitCode = gState.body(static_cast<int>(gState.args.size() - 1), gState.args.data());
  LOG_INFO("service %s stopped (exit code %d)", gState.name.c_str(), gState.exitCode);
  setLogSink(nullptr);
  std::fflush(stderr);
  if (gState.log) std::fclose(gState.log);
  if (gState.eventSource) DeregisterEventSource(gState.eventSource);
  gState.status.dwWin32ExitCode = gState.exitCode == 0 ? NO_ERROR : ERROR_SERVICE_SPECIFIC_ERROR;
  gState.status.dwServiceSpecificExitCode = static_cast<DWORD>(gState.exitCode);
  setStatus(SERVICE_STOPPED);
}

BOOL WINAPI onConsoleControl(DWORD type) {
  switch (type) {
    case CTRL_C_EVENT:
      std::raise(SIGINT);
      return TRUE;
    case CTRL_BREAK_EVENT:
    case CTRL_CLOSE_EVENT:
    case CTRL_LOGOFF_EVENT:
    case CTRL_SHUTDOWN_EVENT:
      std::raise(SIGTERM);
      return TRUE;
    default:
      return FALSE;
  }
}

}  // namespace

int run(const char* name, int argc, char** argv, Body body) {
  gState.name = name;
  gState.body = body;
  bool asService = false;
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == "--service") {
      asService = true;
    } else {
      gState.args.push_back(argv[i]);
    }
  }
  gState.args.push_back(nullptr);  // argv[argc] is null
  if (!asService) {
    SetConsoleCtrlHandler(&onConsoleControl, TRUE);
    return body(argc, argv);
  }
  SERVICE_TABLE_ENTRYA table[] = {{gState.name.data(), &serviceMain}, {nullptr, nullptr}};
  if (!StartServiceCtrlDispatcherA(table)) {
    std::fprintf(stderr, "%s: --service is for the Service Control Manager (error %lu)\n", name,
                 GetLastError());
    return 1;
  }
  return gState.exitCode;
}

void startError(const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", gState.name.c_str(), message.c_str());
  if (gState.handle) LOG_ERROR("%s", message.c_str());
}

void reportRunning() { setStatus(SERVICE_RUNNING); }

}  // namespace ds::service
#endif
