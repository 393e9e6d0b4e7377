// A minimal W3C WebDriver client for tests: starts chromedriver on a free
// port, opens a headless Chromium session through it, and drives the page
// (navigate, run a script, find an element's text, take a screenshot) over
// the WebDriver JSON protocol with cpp-httplib.
//
// Thread-compatible.
#ifndef FLEET_TESTS_BROWSER_WEBDRIVER_H_
#define FLEET_TESTS_BROWSER_WEBDRIVER_H_

#include <memory>
#include <optional>
#include <string>

#include "nlohmann/json.hpp"
#include "tests/testing/subprocess.h"

namespace httplib {
class Client;
}

namespace fleet::test {

inline constexpr const char* kChromiumBinary = "/usr/bin/chromium";
inline constexpr const char* kChromedriverBinary = "/usr/bin/chromedriver";

class WebDriver {
 public:
  // Starts chromedriver and a headless Chromium session with a
  // `width` x `height` window. Returns nullptr and a message saying what is
  // missing or what failed in `error`.
  static std::unique_ptr<WebDriver> Start(int width, int height, std::string* error);
  ~WebDriver();  // ends the session and stops chromedriver

  WebDriver(const WebDriver&) = delete;
  WebDriver& operator=(const WebDriver&) = delete;

  bool Navigate(const std::string& url, std::string* error);
  // Runs `script` (a function body; `return` gives the value) in the page.
  std::optional<nlohmann::json> Execute(const std::string& script, std::string* error);
  // The visible text of the first element matching the CSS selector.
  std::optional<std::string> TextOf(const std::string& css_selector, std::string* error);
  // The page as PNG bytes.
  std::optional<std::string> ScreenshotPng(std::string* error);

 private:
  WebDriver() = default;
  // Sends a command; returns the reply's "value", or nullopt with `error`
  // set when the request failed or the driver answered with an error.
  std::optional<nlohmann::json> Command(const std::string& method, const std::string& path,
                                        const nlohmann::json& body, std::string* error);

  std::unique_ptr<Subprocess> driver_;
  std::unique_ptr<httplib::Client> http_;
  std::string session_;
  std::string profile_dir_;
};

// Decodes standard base64 (as WebDriver's screenshot); nullopt when malformed.
std::optional<std::string> DecodeBase64(const std::string& text);

}  // namespace fleet::test

#endif  // FLEET_TESTS_BROWSER_WEBDRIVER_H_
