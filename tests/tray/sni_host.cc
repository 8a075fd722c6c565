// A minimal StatusNotifier host for tests: owns org.kde.StatusNotifierWatcher on the session
// bus, says a host is registered, and writes what the registered item shows (its properties and
// its com.canonical.dbusmenu layout, as labels) to a JSON file twice a second. This is how a
// desktop panel sees devstreams-tray's AppIndicator.
//
// usage: tray_sni_host OUT.json
#include <gio/gio.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace {

using json = nlohmann::json;

const char* kIntrospection = R"(<node>
  <interface name="org.kde.StatusNotifierWatcher">
    <method name="RegisterStatusNotifierItem"><arg type="s" direction="in"/></method>
    <method name="RegisterStatusNotifierHost"><arg type="s" direction="in"/></method>
    <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
    <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
    <property name="ProtocolVersion" type="i" access="read"/>
    <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
    <signal name="StatusNotifierItemUnregistered"><arg type="s"/></signal>
    <signal name="StatusNotifierHostRegistered"/>
  </interface>
</node>)";

struct Host {
  std::string out;
  GDBusConnection* bus = nullptr;
  std::string itemBus;   // unique name of the item's owner
  std::string itemPath;  // its object path
};

json variantJson(GVariant* v) {
  if (g_variant_is_of_type(v, G_VARIANT_TYPE_STRING) ||
      g_variant_is_of_type(v, G_VARIANT_TYPE_OBJECT_PATH)) {
    return g_variant_get_string(v, nullptr);
  }
  if (g_variant_is_of_type(v, G_VARIANT_TYPE_BOOLEAN)) return g_variant_get_boolean(v) != 0;
  if (g_variant_is_of_type(v, G_VARIANT_TYPE_INT32)) return g_variant_get_int32(v);
  if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT32)) return g_variant_get_uint32(v);
  gchar* text = g_variant_print(v, FALSE);
  json j = text;
  g_free(text);
  return j;
}

// Adds every entry of an a{sv} dictionary to the object `j`.
void addDict(json& j, GVariant* dict) {
  GVariantIter it;
  const gchar* key = nullptr;
  GVariant* value = nullptr;
  g_variant_iter_init(&it, dict);
  while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
    j[key] = variantJson(value);
    g_variant_unref(value);
  }
}

// (ia{sv}av): one dbusmenu node with its children.
json layoutJson(GVariant* node) {
  gint32 id = 0;
  GVariant* props = nullptr;
  GVariant* children = nullptr;
  g_variant_get(node, "(i@a{sv}@av)", &id, &props, &children);
  json j{{"id", id}};
  addDict(j, props);
  json kids = json::array();
  GVariantIter ci;
  GVariant* child = nullptr;
  g_variant_iter_init(&ci, children);
  while (g_variant_iter_next(&ci, "v", &child)) {
    kids.push_back(layoutJson(child));
    g_variant_unref(child);
  }
  if (!kids.empty()) j["children"] = kids;
  g_variant_unref(props);
  g_variant_unref(children);
  return j;
}

GVariant* call(Host* h, const std::string& path, const char* iface, const char* method,
               GVariant* args, const char* type) {
  GError* error = nullptr;
  GVariant* r = g_dbus_connection_call_sync(h->bus, h->itemBus.c_str(), path.c_str(), iface, method,
                                            args, G_VARIANT_TYPE(type), G_DBUS_CALL_FLAGS_NONE,
                                            2000, nullptr, &error);
  if (!r) {
    std::fprintf(stderr, "tray_sni_host: %s: %s\n", method, error->message);
    g_clear_error(&error);
  }
  return r;
}

gboolean onTick(gpointer data) {
  auto* h = static_cast<Host*>(data);
  if (h->itemBus.empty()) return G_SOURCE_CONTINUE;
  json doc{{"bus", h->itemBus}, {"path", h->itemPath}};
  GVariant* all = call(h, h->itemPath, "org.freedesktop.DBus.Properties", "GetAll",
                       g_variant_new("(s)", "org.kde.StatusNotifierItem"), "(a{sv})");
  if (!all) return G_SOURCE_CONTINUE;
  GVariant* dict = g_variant_get_child_value(all, 0);
  json item = json::object();
  addDict(item, dict);
  g_variant_unref(dict);
  g_variant_unref(all);
  doc["item"] = item;
  if (item.contains("Menu") && item["Menu"].is_string()) {
    GVariant* layout =
        call(h, item["Menu"].get<std::string>(), "com.canonical.dbusmenu", "GetLayout",
             g_variant_new("(ii@as)", 0, -1, g_variant_new_strv(nullptr, 0)), "(u(ia{sv}av))");
    if (layout) {
      GVariant* root = g_variant_get_child_value(layout, 1);
      doc["menu"] = layoutJson(root);
      g_variant_unref(root);
      g_variant_unref(layout);
    }
  }
  std::string tmp = h->out + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << doc.dump(2) << "\n";
  }
  std::rename(tmp.c_str(), h->out.c_str());
  return G_SOURCE_CONTINUE;
}

void onMethod(GDBusConnection*, const gchar* sender, const gchar*, const gchar*,
              const gchar* method, GVariant* params, GDBusMethodInvocation* inv, gpointer data) {
  auto* h = static_cast<Host*>(data);
  if (g_strcmp0(method, "RegisterStatusNotifierItem") == 0) {
    const gchar* service = nullptr;
    g_variant_get(params, "(&s)", &service);
    // Items give either their object path (the sender is the bus) or a bus name.
    if (service[0] == '/') {
      h->itemBus = sender;
      h->itemPath = service;
    } else {
      h->itemBus = service;
      h->itemPath = "/StatusNotifierItem";
    }
    std::fprintf(stderr, "tray_sni_host: item %s %s\n", h->itemBus.c_str(), h->itemPath.c_str());
    g_dbus_method_invocation_return_value(inv, nullptr);
    std::string name = h->itemBus + h->itemPath;
    g_dbus_connection_emit_signal(h->bus, nullptr, "/StatusNotifierWatcher",
                                  "org.kde.StatusNotifierWatcher", "StatusNotifierItemRegistered",
                                  g_variant_new("(s)", name.c_str()), nullptr);
    return;
  }
  g_dbus_method_invocation_return_value(inv, nullptr);
}

GVariant* onProperty(GDBusConnection*, const gchar*, const gchar*, const gchar*, const gchar* name,
                     GError**, gpointer data) {
  auto* h = static_cast<Host*>(data);
  if (g_strcmp0(name, "IsStatusNotifierHostRegistered") == 0) return g_variant_new_boolean(TRUE);
  if (g_strcmp0(name, "ProtocolVersion") == 0) return g_variant_new_int32(0);
  GVariantBuilder b;
  g_variant_builder_init(&b, G_VARIANT_TYPE("as"));
  if (!h->itemBus.empty()) {
    std::string item = h->itemBus + h->itemPath;
    g_variant_builder_add(&b, "s", item.c_str());
  }
  return g_variant_builder_end(&b);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: tray_sni_host OUT.json\n");
    return 2;
  }
  Host h;
  h.out = argv[1];
  GError* error = nullptr;
  h.bus = g_bus_get_sync(G_BUS_TYPE_SESSION, nullptr, &error);
  if (!h.bus) {
    std::fprintf(stderr, "tray_sni_host: no session bus: %s\n", error->message);
    return 1;
  }
  GDBusNodeInfo* info = g_dbus_node_info_new_for_xml(kIntrospection, &error);
  static const GDBusInterfaceVTable vtable = {onMethod, onProperty, nullptr, {}};
  if (!g_dbus_connection_register_object(h.bus, "/StatusNotifierWatcher", info->interfaces[0],
                                         &vtable, &h, nullptr, &error)) {
    std::fprintf(stderr, "tray_sni_host: %s\n", error->message);
    return 1;
  }
  GVariant* r = g_dbus_connection_call_sync(
      h.bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName",
      g_variant_new("(su)", "org.kde.StatusNotifierWatcher", 4u /* do not queue */),
      G_VARIANT_TYPE("(u)"), G_DBUS_CALL_FLAGS_NONE, 5000, nullptr, &error);
  guint32 reply = 0;
  if (r) g_variant_get(r, "(u)", &reply);
  if (!r || reply != 1) {
    std::fprintf(stderr, "tray_sni_host: cannot own org.kde.StatusNotifierWatcher\n");
    return 1;
  }
  g_variant_unref(r);
  std::fprintf(stderr, "tray_sni_host: ready\n");
  g_timeout_add(500, onTick, &h);
  GMainLoop* loop = g_main_loop_new(nullptr, FALSE);
  g_main_loop_run(loop);
  return 0;
}
