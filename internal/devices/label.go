package devices

import "strings"

// Label names the kind of device a User-Agent describes ("Firefox on
// Linux", "Safari on iOS"), from a fixed vocabulary: nothing the client
// sends is copied into it, so it is safe to show, log and compare. Versions
// are left out so that a browser update does not make a trusted device a
// new one.
func Label(userAgent string) string {
	ua := strings.ToLower(userAgent)
	browser := ""
	for _, b := range []struct{ marker, name string }{
		{"edg/", "Edge"}, {"edga/", "Edge"}, {"edgios/", "Edge"},
		{"opr/", "Opera"}, {"samsungbrowser/", "Samsung Internet"},
		{"firefox/", "Firefox"}, {"fxios/", "Firefox"},
		{"chromium/", "Chromium"}, {"chrome/", "Chrome"}, {"crios/", "Chrome"},
		{"safari/", "Safari"},
		{"curl/", "curl"}, {"okhttp/", "OkHttp"}, {"go-http-client/", "Go HTTP client"},
		{"python-requests/", "Python requests"}, {"wget/", "Wget"},
	} {
		if strings.Contains(ua, b.marker) {
			browser = b.name
			break
		}
	}
	os := ""
	for _, o := range []struct{ marker, name string }{
		{"iphone", "iOS"}, {"ipad", "iPadOS"}, {"android", "Android"}, {"cros", "ChromeOS"},
		{"windows", "Windows"}, {"mac os x", "macOS"}, {"macintosh", "macOS"}, {"linux", "Linux"},
	} {
		if strings.Contains(ua, o.marker) {
			os = o.name
			break
		}
	}
	switch {
	case browser != "" && os != "":
		return browser + " on " + os
	case browser != "":
		return browser
	case os != "":
		return "Unknown browser on " + os
	}
	return "Unknown device"
}
