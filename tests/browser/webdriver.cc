#include "tests/browser/webdriver.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "httplib.h"

namespace fleet::test {
namespace {

constexpr std::chrono::seconds kDriverStartTimeout(30);
constexpr std::chrono::seconds kCommandTimeout(60);
constexpr const char* kElementKey = "element-6066-11e4-a52e-4f735466cecf";

// A port nothing listens on now (the kernel's pick for a bound socket, then
// released). chromedriver takes only a fixed --port.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace

std::unique_ptr<WebDriver> WebDriver::Start(int width, int height, std::string* error) {
  for (const char* binary : {kChromiumBinary, kChromedriverBinary}) {
    if (access(binary, X_OK) != 0) {
      *error = std::string(binary) +
               " is missing: install the Debian packages chromium and chromium-driver "
               "(bash deploy/install-deps.sh does)";
      return nullptr;
    }
  }
  std::unique_ptr<WebDriver> driver(new WebDriver());
  const int port = FreePort();
  driver->driver_ = Subprocess::Start(
      {kChromedriverBinary, "--port=" + std::to_string(port), "--log-level=SEVERE"}, {}, error);
  if (driver->driver_ == nullptr) return nullptr;
  driver->http_ = std::make_unique<httplib::Client>("127.0.0.1", port);
  driver->http_->set_connection_timeout(2);
  driver->http_->set_read_timeout(kCommandTimeout.count());

  // Ready once its /status says so.
  const auto deadline = std::chrono::steady_clock::now() + kDriverStartTimeout;
  bool ready = false;
  while (!ready && std::chrono::steady_clock::now() < deadline) {
    if (auto res = driver->http_->Get("/status"); res && res->status == 200) {
      const auto status = nlohmann::json::parse(res->body, nullptr, false);
      ready = !status.is_discarded() && status["value"].value("ready", false);
    }
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!ready) {
    *error = "chromedriver did not become ready on port " + std::to_string(port) + ": " +
             driver->driver_->err();
    return nullptr;
  }

  char profile[] = "/tmp/fleet-chromium-XXXXXX";
  if (mkdtemp(profile) != nullptr) driver->profile_dir_ = profile;
  const nlohmann::json capabilities = {
      {"capabilities",
       {{"alwaysMatch",
         {{"browserName", "chrome"},
          {"goog:chromeOptions",
           {{"binary", kChromiumBinary},
            {"args",
             {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--hide-scrollbars", "--user-data-dir=" + driver->profile_dir_,
              "--window-size=" + std::to_string(width) + "," + std::to_string(height)}}}}}}}}};
  std::optional<nlohmann::json> session = driver->Command("POST", "/session", capabilities, error);
  if (!session) return nullptr;
  driver->session_ = session->value("sessionId", "");
  if (driver->session_.empty()) {
    *error = "chromedriver answered without a session id: " + session->dump();
    return nullptr;
  }
  return driver;
}

WebDriver::~WebDriver() {
  if (!session_.empty()) {
    std::string ignored;
    Command("DELETE", "/session/" + session_, nullptr, &ignored);
  }
  driver_.reset();  // kills chromedriver (and so its browser)
  if (!profile_dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(profile_dir_, ignored);
  }
}

std::optional<nlohmann::json> WebDriver::Command(const std::string& method, const std::string& path,
                                                 const nlohmann::json& body, std::string* error) {
  driver_->ReadAvailable();
  httplib::Result res = method == "GET"      ? http_->Get(path)
                        : method == "DELETE" ? http_->Delete(path)
                                             : http_->Post(path, body.dump(), "application/json");
  if (!res) {
    *error = method + " " + path + " failed: " + httplib::to_string(res.error());
    return std::nullopt;
  }
  nlohmann::json reply = nlohmann::json::parse(res->body, nullptr, false);
  if (reply.is_discarded() || !reply.contains("value")) {
    *error = method + " " + path + " answered " + std::to_string(res->status) + ": " + res->body;
    return std::nullopt;
  }
  if (res->status != 200) {
    *error = method + " " + path + " failed with " + std::to_string(res->status) + ": " +
             reply["value"].dump();
    return std::nullopt;
  }
  return reply["value"];
}

bool WebDriver::Navigate(const std::string& url, std::string* error) {
  return Command("POST", "/session/" + session_ + "/url", {{"url", url}}, error).has_value();
}

std::optional<nlohmann::json> WebDriver::Execute(const std::string& script, std::string* error) {
  return Command("POST", "/session/" + session_ + "/execute/sync",
                 {{"script", script}, {"args", nlohmann::json::array()}}, error);
}

std::optional<std::string> WebDriver::TextOf(const std::string& css_selector, std::string* error) {
  std::optional<nlohmann::json> element =
      Command("POST", "/session/" + session_ + "/element",
              {{"using", "css selector"}, {"value", css_selector}}, error);
  if (!element || !element->contains(kElementKey)) return std::nullopt;
  std::optional<nlohmann::json> text = Command(
      "GET",
      "/session/" + session_ + "/element/" + (*element)[kElementKey].get<std::string>() + "/text",
      nullptr, error);
  if (!text || !text->is_string()) return std::nullopt;
  return text->get<std::string>();
}

std::optional<std::string> WebDriver::ScreenshotPng(std::string* error) {
  std::optional<nlohmann::json> shot =
      Command("GET", "/session/" + session_ + "/screenshot", nullptr, error);
  if (!shot || !shot->is_string()) return std::nullopt;
  std::optional<std::string> png = DecodeBase64(shot->get<std::string>());
  if (!png) *error = "the screenshot is not valid base64";
  return png;
}

std::optional<std::string> DecodeBase64(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    const int v = value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  return out;
}

}  // namespace fleet::test
