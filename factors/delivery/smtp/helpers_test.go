package smtp

import (
	"mime"
	"net/smtp"
)

type serverInfo = smtp.ServerInfo

type mimeDecoder struct{ mime.WordDecoder }

func (d *mimeDecoder) decode(s string) (string, error) { return d.DecodeHeader(s) }
