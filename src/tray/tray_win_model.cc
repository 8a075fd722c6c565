// The model's output in Win32 shapes (tray_win_model.h).
#include "tray/tray_win_model.h"

namespace ds::tray::win {

namespace {

constexpr char16_t kReplacement = 0xFFFD;

bool isHighSurrogate(char16_t c) { return c >= 0xD800 && c <= 0xDBFF; }
bool isLowSurrogate(char16_t c) { return c >= 0xDC00 && c <= 0xDFFF; }

void appendUtf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string menuLabel(const std::string& label) {
  std::string out;
  for (char c : label) {
    if (c == '&') {
      out += "&&";
    } else if (c == '\t') {
      out += ' ';  // a tab starts the accelerator column
    } else {
      out += c;
    }
  }
  return out;
}

void number(const std::vector<MenuItem>& items, std::vector<Entry>& out,
            std::vector<Action>& actions) {
  for (const auto& it : items) {
    Entry e;
    e.separator = it.separator;
    e.checked = it.checked;
    if (!it.separator) e.label = menuLabel(it.label);
    if (!it.children.empty()) {
      number(it.children, e.children, actions);
    } else if (it.action.kind != ActionKind::None) {
      actions.push_back(it.action);
      e.id = static_cast<unsigned>(actions.size());
    } else if (!it.separator) {
      e.enabled = false;
    }
    out.push_back(std::move(e));
  }
}

}  // namespace

std::u16string toUtf16(std::string_view s) {
  std::u16string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out += static_cast<char16_t>(b);
      ++i;
      continue;
    }
    // The length, the bits of the lead byte, and the range of the second byte (which rules out
    // overlong forms, surrogates and values above U+10FFFF).
    size_t len = 0;
    char32_t c = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
      c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      c = b & 0x0F;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      c = b & 0x07;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    }
    size_t n = 1;  // bytes consumed: the whole sequence, or its valid beginning
    bool ok = len > 0;
    for (; ok && n < len; ++n) {
      if (i + n >= s.size()) {
        ok = false;
        break;
      }
      auto cb = static_cast<unsigned char>(s[i + n]);
      unsigned char min = n == 1 ? lo : 0x80, max = n == 1 ? hi : 0xBF;
      if (cb < min || cb > max) {
        ok = false;
        break;
      }
      c = (c << 6) | (cb & 0x3F);
    }
    i += n;
    if (!ok) {
      out += kReplacement;
    } else if (c >= 0x10000) {
      c -= 0x10000;
      out += static_cast<char16_t>(0xD800 + (c >> 10));
      out += static_cast<char16_t>(0xDC00 + (c & 0x3FF));
    } else {
      out += static_cast<char16_t>(c);
    }
  }
  return out;
}

std::string toUtf8(std::u16string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char16_t c = s[i];
    if (isHighSurrogate(c) && i + 1 < s.size() && isLowSurrogate(s[i + 1])) {
      appendUtf8(out, 0x10000 + ((char32_t{c} - 0xD800) << 10) + (s[i + 1] - 0xDC00));
      ++i;
    } else if (isHighSurrogate(c) || isLowSurrogate(c)) {
      appendUtf8(out, kReplacement);
    } else {
      appendUtf8(out, c);
    }
  }
  return out;
}

std::u16string fitBuffer(std::u16string s, size_t units) {
  if (units == 0) return {};
  size_t room = units - 1;
  if (s.size() <= room) return s;
  bool dots = room >= 4;
  size_t n = dots ? room - 3 : room;
  if (n > 0 && isHighSurrogate(s[n - 1])) --n;
  s.resize(n);
  if (dots) s += u"...";
  return s;
}

const Action* CommandMenu::find(unsigned id) const {
  return id >= 1 && id <= actions.size() ? &actions[id - 1] : nullptr;
}

CommandMenu commandMenu(const std::vector<MenuItem>& items) {
  CommandMenu m;
  number(items, m.entries, m.actions);
  return m;
}

std::string commandLine(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& w : argv) {
    if (!out.empty()) out += ' ';
    if (!w.empty() && w.find_first_of(" \t\n\v\"") == std::string::npos) {
      out += w;
      continue;
    }
    out += '"';
    size_t slashes = 0;
    for (char c : w) {
      if (c == '\\') {
        ++slashes;
        continue;
      }
      // Backslashes are literal unless a quote follows them: then each is written twice, and
      // the quote once more, escaped.
      out.append(c == '"' ? 2 * slashes + 1 : slashes, '\\');
      slashes = 0;
      out += c;
    }
    out.append(2 * slashes, '\\');  // they precede the closing quote
    out += '"';
  }
  return out;
}

int iconResource(Link link) {
  switch (link) {
    case Link::Connected:
      return kIconConnected;
    case Link::HubDown:
      return kIconHubDown;
    case Link::ApiError:
      return kIconApiError;
    case Link::DaemonDown:
      break;
  }
  return kIconDaemonDown;
}

}  // namespace ds::tray::win
