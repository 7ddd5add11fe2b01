package log

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/factors/phone"
)

func TestRefusedOutsideDevMode(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); !errors.Is(err, delivery.ErrDevOnly) {
		t.Fatalf("err = %v, want ErrDevOnly", err)
	}
}

func TestLogsCallAndMessage(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p, err := New(Config{DevMode: true, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	call, err := p.StartCall(context.Background(), "+491701234567")
	if err != nil {
		t.Fatal(err)
	}
	if !phone.Valid(call.CLI) || !strings.HasPrefix(call.CLI, "+1555") || len(call.CLI) != 12 {
		t.Fatalf("cli = %q", call.CLI)
	}
	if !strings.Contains(buf.String(), call.CLI) {
		t.Fatal("calling number not logged")
	}
	if err := p.Send(context.Background(), delivery.Message{Channel: delivery.ChannelSMS, To: "+491701234567", Body: "code 424242"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "424242") {
		t.Fatal("message body not logged")
	}
}
