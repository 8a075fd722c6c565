// The GTK 3 front end: icon, menu, notifications and actions around the model (model.h).
//
// GtkStatusIcon (the XEmbed tray icon) exists only as deprecated API in GTK 3, and it is the
// one way to reach XEmbed tray hosts (trayer, stalonetray, older panels), hence the define.
#define GDK_DISABLE_DEPRECATION_WARNINGS 1
#include "tray/tray_gtk.h"

#include <glib-unix.h>
#include <gtk/gtk.h>
#include <libayatana-appindicator/app-indicator.h>
#include <libnotify/notify.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/daemon_ctl.h"
#include "tray/control.h"
#include "tray/model.h"

namespace ds::tray {

namespace {

using json = nlohmann::json;

void logLine(const std::string& s) { std::fprintf(stderr, "devstreams-tray: %s\n", s.c_str()); }

// Whether a StatusNotifier host is registered on the session bus (an AppIndicator would show).
bool statusNotifierHostRuns(GDBusConnection* bus) {
  if (!bus) return false;
  GError* error = nullptr;
  GVariant* r = g_dbus_connection_call_sync(
      bus, "org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher",
      "org.freedesktop.DBus.Properties", "Get",
      g_variant_new("(ss)", "org.kde.StatusNotifierWatcher", "IsStatusNotifierHostRegistered"),
      G_VARIANT_TYPE("(v)"), G_DBUS_CALL_FLAGS_NO_AUTO_START, 1000, nullptr, &error);
  if (!r) {
    g_clear_error(&error);
    return false;
  }
  GVariant* v = nullptr;
  g_variant_get(r, "(v)", &v);
  bool yes = v && g_variant_is_of_type(v, G_VARIANT_TYPE_BOOLEAN) && g_variant_get_boolean(v);
  if (v) g_variant_unref(v);
  g_variant_unref(r);
  return yes;
}

class Tray : public Desktop {
 public:
  explicit Tray(const Settings& s) : settings_(s) {}
  ~Tray() {
    for (guint id : {timer_, dumpTimer_}) {
      if (id) g_source_remove(id);
    }
    if (indicator_) g_object_unref(indicator_);
    if (bus_) g_object_unref(bus_);
    if (icon_) g_object_unref(icon_);
    if (menu_) {
      gtk_widget_destroy(menu_);
      g_object_unref(menu_);  // the reference taken by g_object_ref_sink
    }
    if (notify_is_initted()) notify_uninit();
  }
  Tray(const Tray&) = delete;
  Tray& operator=(const Tray&) = delete;

  int run() {
    notify_init("devstreams-tray");
    menu_ = gtk_menu_new();
    g_object_ref_sink(menu_);
    state_.daemonError = "not asked yet";
    model_ = buildMenu(state_, options());
    // The shared session bus connection, held for the life of the tray: the AppIndicator and
    // libnotify use the same one, and dropping the last reference here would close it under
    // them while they connect.
    GError* error = nullptr;
    bus_ = g_bus_get_sync(G_BUS_TYPE_SESSION, nullptr, &error);
    if (!bus_) {
      logLine(std::string("no session bus (") + error->message + ")");
      g_clear_error(&error);
    }
    if (!settings_.statusIcon && statusNotifierHostRuns(bus_)) {
      indicator_ = app_indicator_new("devstreams-tray", model_.iconName.c_str(),
                                     APP_INDICATOR_CATEGORY_COMMUNICATIONS);
      app_indicator_set_status(indicator_, APP_INDICATOR_STATUS_ACTIVE);
      app_indicator_set_menu(indicator_, GTK_MENU(menu_));
      frontEnd_ = "appindicator";
    } else {
      icon_ = gtk_status_icon_new_from_icon_name(model_.iconName.c_str());
      gtk_status_icon_set_title(icon_, "devstreams");
      g_signal_connect(icon_, "activate", G_CALLBACK(onIconActivate), this);
      g_signal_connect(icon_, "popup-menu", G_CALLBACK(onIconPopup), this);
      frontEnd_ = "status-icon";
    }
    logLine("showing " + std::string(indicator_ ? "a StatusNotifier item" : "an XEmbed tray icon") +
            "; control socket " + settings_.control);
    show();
    g_unix_signal_add(SIGTERM, onSignal, this);
    g_unix_signal_add(SIGINT, onSignal, this);
    refresh();
    timer_ = g_timeout_add(static_cast<guint>(settings_.interval.count()), onTimer, this);
    if (!settings_.dumpMenu.empty()) dumpTimer_ = g_timeout_add(250, onDumpTimer, this);
    gtk_main();
    return 0;
  }

 private:
  struct PollJob {
    std::string socket;
    Poll poll;
  };
  struct ActionJob {
    std::string socket;
    std::string method, target, body;
    std::string what;  // for messages: "forward 127.0.0.1:0 -> dev01:22"
    Answer answer;
  };

  MenuOptions options() const {
    MenuOptions o;
    o.webPorts = settings_.webPorts;
    o.watched = watched_;
    o.now = static_cast<int64_t>(std::time(nullptr));
    return o;
  }

  // ---- refresh ------------------------------------------------------------------------------

  void refresh() override {
    if (polling_) return;  // one poll at a time; the next tick asks again
    polling_ = true;
    auto* job = new PollJob{settings_.control, {}};
    GTask* task = g_task_new(nullptr, nullptr, onPolled, this);
    g_task_set_task_data(task, job, [](gpointer p) { delete static_cast<PollJob*>(p); });
    g_task_run_in_thread(task, pollThread);
    g_object_unref(task);
  }

  static void pollThread(GTask*, gpointer, gpointer data, GCancellable*) {
    auto* job = static_cast<PollJob*>(data);
    job->poll = pollDaemon(job->socket);
  }

  static void onPolled(GObject*, GAsyncResult* res, gpointer self) {
    auto* t = static_cast<Tray*>(self);
    auto* job = static_cast<PollJob*>(g_task_get_task_data(G_TASK(res)));
    t->polling_ = false;
    State next = readPoll(job->poll);
    Told told = tell(t->state_, next, t->watched_, t->polls_ == 0);
    for (const auto& n : told.notices) t->notice(n);
    for (const auto& l : told.logLines) logLine(l);
    t->state_ = std::move(next);
    ++t->polls_;
    t->show();
  }

  static gboolean onTimer(gpointer self) {
    static_cast<Tray*>(self)->refresh();
    return G_SOURCE_CONTINUE;
  }

  static gboolean onSignal(gpointer) {
    gtk_main_quit();
    return G_SOURCE_CONTINUE;
  }

  // ---- showing ------------------------------------------------------------------------------

  void show() override {
    Menu next = buildMenu(state_, options());
    bool changed = !(next == model_) || !built_;
    model_ = std::move(next);
    if (indicator_) {
      app_indicator_set_icon_full(indicator_, model_.iconName.c_str(), model_.title.c_str());
      app_indicator_set_title(indicator_, model_.tooltip.c_str());
    } else {
      gtk_status_icon_set_from_icon_name(icon_, model_.iconName.c_str());
      gtk_status_icon_set_tooltip_text(icon_, model_.tooltip.c_str());
    }
    if (changed) {
      // In place when only texts changed, so that an open menu stays open under the pointer.
      if (!built_ || !patch(menu_, model_.items)) {
        fill(GTK_MENU_SHELL(menu_), model_.items);
        gtk_widget_show_all(menu_);
      }
      built_ = true;
    }
  }

  // Sets labels, check marks and actions of a menu that has the shape of `items`; false (with
  // the menu partly changed) when the shape differs.
  bool patch(GtkWidget* shell, const std::vector<MenuItem>& items) {
    GList* kids = gtk_container_get_children(GTK_CONTAINER(shell));
    bool ok = g_list_length(kids) == items.size();
    size_t i = 0;
    for (GList* l = kids; ok && l; l = l->next, ++i) {
      GtkWidget* w = GTK_WIDGET(l->data);
      const MenuItem& it = items[i];
      bool sameKind = static_cast<bool>(GTK_IS_SEPARATOR_MENU_ITEM(w)) == it.separator &&
                      static_cast<bool>(GTK_IS_CHECK_MENU_ITEM(w)) == it.checked.has_value();
      if (!sameKind) {
        ok = false;
        break;
      }
      if (it.separator) continue;
      GtkWidget* sub = gtk_menu_item_get_submenu(GTK_MENU_ITEM(w));
      bool acts = it.children.empty() && it.action.kind != ActionKind::None;
      if ((sub != nullptr) != !it.children.empty() ||
          (g_object_get_data(G_OBJECT(w), "ds-action") != nullptr) != acts ||
          (sub && !patch(sub, it.children))) {
        ok = false;
        break;
      }
      if (it.label != gtk_menu_item_get_label(GTK_MENU_ITEM(w))) {
        gtk_menu_item_set_label(GTK_MENU_ITEM(w), it.label.c_str());
      }
      if (acts) {
        g_object_set_data_full(G_OBJECT(w), "ds-action", new Action(it.action),
                               [](gpointer p) { delete static_cast<Action*>(p); });
      }
      if (it.checked) {
        // set_active emits "activate": not a choice of the user.
        g_signal_handlers_block_by_func(w, reinterpret_cast<gpointer>(onItem), this);
        gtk_check_menu_item_set_active(GTK_CHECK_MENU_ITEM(w), *it.checked);
        g_signal_handlers_unblock_by_func(w, reinterpret_cast<gpointer>(onItem), this);
      }
    }
    g_list_free(kids);
    return ok;
  }

  void fill(GtkMenuShell* shell, const std::vector<MenuItem>& items) {
    GList* old = gtk_container_get_children(GTK_CONTAINER(shell));
    for (GList* l = old; l; l = l->next) gtk_widget_destroy(GTK_WIDGET(l->data));
    g_list_free(old);
    for (const auto& it : items) {
      GtkWidget* w = nullptr;
      if (it.separator) {
        w = gtk_separator_menu_item_new();
      } else if (it.checked) {
        w = gtk_check_menu_item_new_with_label(it.label.c_str());
        gtk_check_menu_item_set_active(GTK_CHECK_MENU_ITEM(w), *it.checked);
      } else {
        w = gtk_menu_item_new_with_label(it.label.c_str());
      }
      if (!it.children.empty()) {
        GtkWidget* sub = gtk_menu_new();
        fill(GTK_MENU_SHELL(sub), it.children);
        gtk_menu_item_set_submenu(GTK_MENU_ITEM(w), sub);
      } else if (it.action.kind != ActionKind::None) {
        g_object_set_data_full(G_OBJECT(w), "ds-action", new Action(it.action),
                               [](gpointer p) { delete static_cast<Action*>(p); });
        g_signal_connect(w, "activate", G_CALLBACK(onItem), this);
      } else if (!it.separator) {
        gtk_widget_set_sensitive(w, FALSE);
      }
      gtk_menu_shell_append(shell, w);
    }
  }

  static void onIconActivate(GtkStatusIcon*, gpointer self) { static_cast<Tray*>(self)->popup(); }
  static void onIconPopup(GtkStatusIcon*, guint, guint, gpointer self) {
    static_cast<Tray*>(self)->popup();
  }

  void popup() {
    refresh();  // what it shows next is at most one poll old
    gtk_menu_popup_at_pointer(GTK_MENU(menu_), nullptr);
  }

  void notice(const Notice& n) {
    logLine(n.title + (n.body.empty() ? "" : ": " + n.body));
    said_.notice(n);
    NotifyNotification* nn =
        notify_notification_new(n.title.c_str(), n.body.c_str(), model_.iconName.c_str());
    GError* error = nullptr;
    if (!notify_notification_show(nn, &error)) {
      // No notification daemon: the notice is in the log and the menu dump; say so once.
      if (!notifyFailed_) logLine(std::string("cannot show notifications: ") + error->message);
      notifyFailed_ = true;
      g_clear_error(&error);
    }
    g_object_unref(nn);
  }

  // A failed action: a dialog and the log, never silence.
  void fail(const std::string& what, const std::string& why) {
    logLine(what + ": " + why);
    said_.actionError(what + ": " + why);
    GtkWidget* d = gtk_message_dialog_new(nullptr, GTK_DIALOG_DESTROY_WITH_PARENT,
                                          GTK_MESSAGE_ERROR, GTK_BUTTONS_CLOSE, "%s", what.c_str());
    gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(d), "%s", why.c_str());
    gtk_window_set_title(GTK_WINDOW(d), "devstreams");
    g_signal_connect(d, "response", G_CALLBACK(gtk_widget_destroy), nullptr);
    gtk_widget_show_all(d);
  }

  // ---- actions ------------------------------------------------------------------------------

  static void onItem(GtkMenuItem* w, gpointer self) {
    const auto* a = static_cast<const Action*>(g_object_get_data(G_OBJECT(w), "ds-action"));
    // A copy: the item's action is replaced or freed by refreshes while the action runs (the
    // forward dialog runs a nested main loop).
    if (!a) return;
    const Action chosen = *a;
    auto* t = static_cast<Tray*>(self);
    act(chosen, t->settings_, t->state_, t->watched_, *t);
  }

  // Expands `tmpl` (inside the terminal template when `inTerminal`) and starts it.
  void spawn(const std::string& what, const std::string& tmpl,
             const std::map<std::string, std::string>& v, bool inTerminal) override {
    std::vector<std::string> argv;
    std::string err;
    if (!expandCommand(tmpl, v, {}, argv, err)) return fail(what, err);
    if (inTerminal) {
      std::vector<std::string> command = std::move(argv);
      if (!expandCommand(settings_.terminal, v, command, argv, err)) return fail(what, err);
    }
    std::vector<char*> cargv;
    cargv.reserve(argv.size() + 1);
    for (auto& s : argv) cargv.push_back(s.data());
    cargv.push_back(nullptr);
    GError* error = nullptr;
    GPid pid = 0;
    if (!g_spawn_async(nullptr, cargv.data(), nullptr,
                       static_cast<GSpawnFlags>(G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD),
                       nullptr, nullptr, &pid, &error)) {
      std::string why = error->message;
      g_clear_error(&error);
      return fail(what, why + " (" + shellQuote(argv) + ")");
    }
    logLine(what + ": " + shellQuote(argv));
    // Reap it; a quick failure (a missing terminal, a unit that does not start) is reported.
    auto* job = new std::pair<Tray*, std::string>(this, what + " (" + shellQuote(argv) + ")");
    g_child_watch_add(pid, onChildExit, job);
  }

  static void onChildExit(GPid pid, gint status, gpointer data) {
    std::unique_ptr<std::pair<Tray*, std::string>> job(
        static_cast<std::pair<Tray*, std::string>*>(data));
    g_spawn_close_pid(pid);
    GError* error = nullptr;
    if (!g_spawn_check_wait_status(status, &error)) {
      job->first->fail(job->second, error->message);
      g_clear_error(&error);
    }
  }

  void builtIn(ActionKind, const std::string&) override {
    // main() refuses empty templates on Linux.
    fail("devstreams-tray", "no command for this action");
  }

  void copy(const std::string& text) override {
    gtk_clipboard_set_text(gtk_clipboard_get(GDK_SELECTION_CLIPBOARD), text.c_str(), -1);
    logLine("copied: " + text);
  }

  void quit() override { gtk_main_quit(); }

  void askForward(const std::string& device) override {
    GtkWidget* d = gtk_dialog_new_with_buttons(
        ("Forward a local port to " + device).c_str(), nullptr, GTK_DIALOG_DESTROY_WITH_PARENT,
        "_Cancel", GTK_RESPONSE_CANCEL, "_Forward", GTK_RESPONSE_OK, nullptr);
    gtk_dialog_set_default_response(GTK_DIALOG(d), GTK_RESPONSE_OK);
    GtkWidget* grid = gtk_grid_new();
    gtk_grid_set_row_spacing(GTK_GRID(grid), 6);
    gtk_grid_set_column_spacing(GTK_GRID(grid), 12);
    gtk_container_set_border_width(GTK_CONTAINER(grid), 12);
    GtkWidget* port = gtk_spin_button_new_with_range(1, 65535, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(port), 22);
    GtkWidget* local = gtk_spin_button_new_with_range(0, 65535, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(local), 0);
    gtk_entry_set_activates_default(GTK_ENTRY(port), TRUE);  // Return means "Forward"
    gtk_entry_set_activates_default(GTK_ENTRY(local), TRUE);
    gtk_grid_attach(GTK_GRID(grid), gtk_label_new(("Port on " + device).c_str()), 0, 0, 1, 1);
    gtk_grid_attach(GTK_GRID(grid), port, 1, 0, 1, 1);
    gtk_grid_attach(GTK_GRID(grid), gtk_label_new("Local port on 127.0.0.1 (0: any)"), 0, 1, 1, 1);
    gtk_grid_attach(GTK_GRID(grid), local, 1, 1, 1, 1);
    gtk_container_add(GTK_CONTAINER(gtk_dialog_get_content_area(GTK_DIALOG(d))), grid);
    gtk_widget_show_all(d);
    if (gtk_dialog_run(GTK_DIALOG(d)) == GTK_RESPONSE_OK) {
      int p = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(port));
      int l = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(local));
      call("Forward 127.0.0.1:" + std::to_string(l) + " to " + device + ":" + std::to_string(p),
           "POST", "/v1/forwards", forwardBody(device, p, l));
    }
    gtk_widget_destroy(d);
  }

  // One control-API request that changes something, off the GUI thread; errors are shown.
  void call(const std::string& what, const std::string& method, const std::string& target,
            const std::string& body) override {
    auto* job = new ActionJob{settings_.control, method, target, body, what, {}};
    GTask* task = g_task_new(nullptr, nullptr, onCalled, this);
    g_task_set_task_data(task, job, [](gpointer p) { delete static_cast<ActionJob*>(p); });
    g_task_run_in_thread(task, [](GTask*, gpointer, gpointer data, GCancellable*) {
      auto* j = static_cast<ActionJob*>(data);
      j->answer = request(j->socket, j->method, j->target, j->body);
    });
    g_object_unref(task);
  }

  static void onCalled(GObject*, GAsyncResult* res, gpointer self) {
    auto* t = static_cast<Tray*>(self);
    auto* job = static_cast<ActionJob*>(g_task_get_task_data(G_TASK(res)));
    const Answer& a = job->answer;
    if (!a.reached || a.status >= 300) {
      t->fail(job->what, describeError(a));
    } else {
      std::string listen = addedForward(a);
      if (!listen.empty()) {
        // The new forward's address is what the user wants next: on the clipboard.
        gtk_clipboard_set_text(gtk_clipboard_get(GDK_SELECTION_CLIPBOARD), listen.c_str(), -1);
        t->notice({"Forward added", listen + " (copied)"});
      } else {
        logLine(job->what + ": done");
      }
    }
    t->refresh();
  }

  // ---- the dump (tests, bug reports) --------------------------------------------------------

  static json widgets(GtkWidget* shell) {
    json out = json::array();
    GList* kids = gtk_container_get_children(GTK_CONTAINER(shell));
    for (GList* l = kids; l; l = l->next) {
      GtkWidget* w = GTK_WIDGET(l->data);
      if (GTK_IS_SEPARATOR_MENU_ITEM(w)) {
        out.push_back(json{{"separator", true}});
        continue;
      }
      json j{{"label", gtk_menu_item_get_label(GTK_MENU_ITEM(w))},
             {"sensitive", static_cast<bool>(gtk_widget_get_sensitive(w))},
             {"mapped", static_cast<bool>(gtk_widget_get_mapped(w))}};
      if (GTK_IS_CHECK_MENU_ITEM(w)) {
        j["checked"] = static_cast<bool>(gtk_check_menu_item_get_active(GTK_CHECK_MENU_ITEM(w)));
      }
      if (gtk_widget_get_mapped(w)) {
        // The item's rectangle on the screen: where a person would click.
        GtkWidget* top = gtk_widget_get_toplevel(w);
        gint x = 0, y = 0, ox = 0, oy = 0;
        GtkAllocation a;
        gtk_widget_get_allocation(w, &a);
        if (gtk_widget_translate_coordinates(w, top, 0, 0, &x, &y) && gtk_widget_get_window(top)) {
          gdk_window_get_origin(gtk_widget_get_window(top), &ox, &oy);
          j["rect"] = {ox + x, oy + y, a.width, a.height};
        }
      }
      if (GtkWidget* sub = gtk_menu_item_get_submenu(GTK_MENU_ITEM(w))) {
        j["children"] = widgets(sub);
      }
      out.push_back(std::move(j));
    }
    g_list_free(kids);
    return out;
  }

  static gboolean onDumpTimer(gpointer self) {
    static_cast<Tray*>(self)->dump();
    return G_SOURCE_CONTINUE;
  }

  void dump() {
    json d{{"front_end", frontEnd_},
           {"polls", polls_},
           {"model", menuJson(model_)},
           {"menu_mapped", static_cast<bool>(gtk_widget_get_mapped(menu_))},
           {"widgets", widgets(menu_)}};
    if (icon_) {
      GdkRectangle area{};
      GtkOrientation orientation;
      bool embedded = gtk_status_icon_is_embedded(icon_);
      d["icon"] = {{"embedded", embedded}};
      if (embedded && gtk_status_icon_get_geometry(icon_, nullptr, &area, &orientation)) {
        d["icon"]["rect"] = {area.x, area.y, area.width, area.height};
      }
    }
    std::string err;
    if (!said_.dump(std::move(d), settings_.dumpMenu, err)) logLine(err);
  }

  Settings settings_;
  std::set<std::string> watched_ = settings_.watched;
  State state_;
  Menu model_;
  bool built_ = false;
  bool polling_ = false;
  int64_t polls_ = 0;
  GtkWidget* menu_ = nullptr;
  GDBusConnection* bus_ = nullptr;
  AppIndicator* indicator_ = nullptr;
  GtkStatusIcon* icon_ = nullptr;
  std::string frontEnd_;
  guint timer_ = 0;
  guint dumpTimer_ = 0;
  bool notifyFailed_ = false;
  Said said_;
};

}  // namespace

int runTray(const Settings& settings) {
  Tray tray(settings);
  return tray.run();
}

}  // namespace ds::tray
