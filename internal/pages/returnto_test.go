package pages

import (
	"errors"
	"testing"
)

func TestReturnToAllowList(t *testing.T) {
	l, err := ParseReturnToList([]string{"https://app.example.com/after/", "http://127.0.0.1:8081/done"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		raw  string
		want string // "" = refused
	}{
		{"https://app.example.com/after/", "https://app.example.com/after/"},
		{"https://app.example.com/after/x?y=1", "https://app.example.com/after/x?y=1"},
		{"https://app.example.com/after/x#frag", "https://app.example.com/after/x"},
		{"https://APP.example.com/after/x", "https://APP.example.com/after/x"},
		{"http://127.0.0.1:8081/done", "http://127.0.0.1:8081/done"},
		{"http://127.0.0.1:8081/done/more", "http://127.0.0.1:8081/done/more"},
		{"http://127.0.0.1:8081/donekey", ""},
		{"https://app.example.com/afterwards", ""},
		{"https://app.example.com/", ""},
		{"https://app.example.com", ""},
		{"http://app.example.com/after/", ""},
		{"https://app.example.com:444/after/", ""},
		{"https://evil.example.com/after/", ""},
		{"https://app.example.com.evil.com/after/", ""},
		{"//evil.com/after/", ""},
		{"//app.example.com/after/", ""},
		{"/after/", ""},
		{"after/", ""},
		{"javascript:alert(1)", ""},
		{"JavaScript://app.example.com/after/%0aalert(1)", ""},
		{"data:text/html,hi", ""},
		{"https:\\\\evil.com/after/", ""},
		{"https://app.example.com\\@evil.com/after/", ""},
		{"https://app.example.com/after/\\evil", ""},
		{"https://evil.com\\app.example.com/after/", ""},
		{"https://app.example.com@evil.com/after/", ""},
		{"https://user:pw@app.example.com/after/", ""},
		{"https://evil.com#@app.example.com/after/", ""},
		{"https://evil.com?@app.example.com/after/", ""},
		{"https://app.example.com/after/../admin", ""},
		{"https://app.example.com/after/%2e%2e/admin", ""},
		{"https://app.example.com/after/..%2fadmin", ""},
		{"https://app.example.com/after//evil.com", ""},
		{"https://app.example.com/after/\tx", ""},
		{"https://app.example.com/after/\nx", ""},
		{" https://app.example.com/after/", ""},
		{"https://app.example.com/after/é", ""},
		{"https:/app.example.com/after/", ""},
		{"https:app.example.com/after/", ""},
		{"ftp://app.example.com/after/", ""},
		{"", ""},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := l.Check(tc.raw)
			if tc.want == "" {
				if !errors.Is(err, ErrReturnToRefused) || got != "" {
					t.Fatalf("Check(%q) = %q, %v; want refused", tc.raw, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Check(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			}
		})
	}
}

func TestReturnToEmptyListAllowsNothing(t *testing.T) {
	var l ReturnToList
	if _, err := l.Check("https://app.example.com/"); !errors.Is(err, ErrReturnToRefused) {
		t.Fatalf("empty list allowed a URL: %v", err)
	}
}

func TestReturnToListEntriesChecked(t *testing.T) {
	for _, bad := range []string{"app.example.com/after", "/after", "javascript:x", "https://a@app.example.com/",
		"https://app.example.com/?q=1", "https://app.example.com/#f", "https://app.example.com/a/../b", "https://app.example.com/a b"} {
		t.Run(bad, func(t *testing.T) {
			if _, err := ParseReturnToList([]string{bad}); err == nil {
				t.Fatalf("entry %q accepted", bad)
			}
		})
	}
}
