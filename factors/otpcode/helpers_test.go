package otpcode

import (
	"crypto/rand"
	"io"
	"text/template"
)

func nil2rand() io.Reader { return rand.Reader }

func parseTemplate(s string) (*template.Template, error) {
	return template.New("t").Option("missingkey=error").Parse(s)
}
