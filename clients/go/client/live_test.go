package client_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal/clients/go/client"
	"github.com/fieldseal/fieldseal/clients/go/envelope"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// These tests call a real Fieldseal server, started here from the repository's build (`npm run build`)
// with the repository's Node, on a loopback port the server picks.

const token = "fsk_go-client-live-test-token"

var (
	repoRoot   = filepath.Join("..", "..", "..")
	serverAddr string
	readyLine  = regexp.MustCompile(`^fieldseal listening on http://(\S+) `)
)

func TestMain(m *testing.M) {
	stop, err := startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fieldseal live tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

func startServer() (func(), error) {
	node := filepath.Join(repoRoot, "node_modules", ".bin", "node")
	if _, err := os.Stat(filepath.Join(repoRoot, "dist", "src", "cli.js")); err != nil {
		return nil, fmt.Errorf("no server build at dist/src/cli.js: run `npm run build` in the repository root")
	}
	dir, err := os.MkdirTemp("", "fieldseal-go-live-")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(token))
	config := fmt.Sprintf(`{"principals":[{"name":"downstream","tokenSha256":%q,"scopes":["encrypt","decrypt:*","index:*"]}],"fields":{"card_on_file":{"format":"card"}}}`, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(node, filepath.Join(repoRoot, "bin", "fieldseal.js"), "serve")
	cmd.Env = append(os.Environ(),
		"FIELDSEAL_DATA_DIR="+dir,
		"FIELDSEAL_CONFIG="+filepath.Join(dir, "config.json"),
		"FIELDSEAL_PORT=0",
		"FIELDSEAL_HOST=127.0.0.1",
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = os.RemoveAll(dir)
	}

	ready := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		scanner.Buffer(make([]byte, 64*1024), 1024*1024)
		for scanner.Scan() {
			if m := readyLine.FindStringSubmatch(scanner.Text()); m != nil {
				ready <- m[1]
				break
			}
		}
		// Keep draining: the server writes logs and audit lines to stdout.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case addr := <-ready:
		serverAddr = addr
		return stop, nil
	case <-exited:
		stop()
		return nil, fmt.Errorf("server exited before it was ready; stderr:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		stop()
		return nil, fmt.Errorf("server printed no ready line within 30 s; stderr:\n%s", stderr.String())
	}
}

func dial(t *testing.T, tok string) *client.Client {
	t.Helper()
	opts := []client.Option{client.WithInsecure()}
	if tok != "" {
		opts = append(opts, client.WithToken(tok))
	}
	c, err := client.New(serverAddr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

var fields = map[string]any{
	"credit_card": "4111111111111111",
	"pin_tries":   float64(3),
	"verified":    true,
	"cleared":     nil,
	"address":     map[string]any{"city": "Zürich", "lines": []any{"Bahnhofstrasse 1"}},
}

func TestSealsThenOpensOneFieldAtATime(t *testing.T) {
	c := dial(t, token)
	scope := envelope.SessionScope("sess_go_live")
	sealed, err := c.EncryptFields(ctx(t), scope, fields, "")
	if err != nil {
		t.Fatalf("EncryptFields: %v", err)
	}
	if len(sealed.Sealed) != len(fields) || sealed.KeyVersion < 1 {
		t.Fatalf("EncryptFields = %+v", sealed)
	}
	for name, want := range fields {
		if !strings.HasPrefix(sealed.Sealed[name], "fs1."+sealed.Keyring+".") {
			t.Fatalf("field %s sealed as %q", name, sealed.Sealed[name])
		}
		got, err := c.DecryptField(ctx(t), scope, name, sealed.Sealed[name])
		if err != nil {
			t.Fatalf("DecryptField(%s): %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("DecryptField(%s) = %#v, want %#v", name, got, want)
		}
	}
}

func TestOpensManyFieldsWithPerItemErrors(t *testing.T) {
	c := dial(t, token)
	scope := envelope.UserScope("user_go_live")
	sealed, err := c.EncryptFields(ctx(t), scope, map[string]any{"ssn": "999-99-0000", "credit_card": "4111111111111111"}, "")
	if err != nil {
		t.Fatalf("EncryptFields: %v", err)
	}
	tampered := tamper(sealed.Sealed["credit_card"])
	results, err := c.DecryptFields(ctx(t), scope, []client.Item{
		{Field: "ssn", Sealed: sealed.Sealed["ssn"]},
		{Field: "credit_card", Sealed: tampered},
		{Field: "moved", Sealed: sealed.Sealed["ssn"]},
	})
	if err != nil {
		t.Fatalf("DecryptFields: %v", err)
	}
	if len(results) != 3 {
		t.Fatalf("got %d results, want 3", len(results))
	}
	if results[0].Field != "ssn" || results[0].Err != nil || results[0].Value != "999-99-0000" ||
		results[0].KeyVersion != sealed.KeyVersion {
		t.Fatalf("results[0] = %+v", results[0])
	}
	for _, r := range results[1:] {
		var e *client.Error
		if !errors.As(r.Err, &e) || !errors.Is(r.Err, envelope.ErrEnvelopeTampered) || e.Status != codes.InvalidArgument {
			t.Fatalf("result for %s = %+v, want envelope_tampered / INVALID_ARGUMENT", r.Field, r)
		}
	}
}

func TestRefusesATamperedValue(t *testing.T) {
	c := dial(t, token)
	scope := envelope.SessionScope("sess_go_tamper")
	sealed, err := c.EncryptFields(ctx(t), scope, map[string]any{"credit_card": "4111111111111111"}, "")
	if err != nil {
		t.Fatalf("EncryptFields: %v", err)
	}
	_, err = c.DecryptField(ctx(t), scope, "credit_card", tamper(sealed.Sealed["credit_card"]))
	if status.Code(err) != codes.InvalidArgument || !errors.Is(err, envelope.ErrEnvelopeTampered) {
		t.Fatalf("DecryptField(tampered) = %v (%v), want INVALID_ARGUMENT envelope_tampered", err, status.Code(err))
	}
	if e := (*client.Error)(nil); !errors.As(err, &e) || e.RequestID == "" {
		t.Fatalf("error carries no request id: %#v", err)
	}
}

func TestRefusesAWrongToken(t *testing.T) {
	for name, tok := range map[string]string{"wrong token": "fsk_not-the-token", "no token": ""} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, tok)
			_, err := c.DecryptField(ctx(t), envelope.SessionScope("s"), "credit_card", "fs1.default.1.AAAA")
			if status.Code(err) != codes.Unauthenticated || !errors.Is(err, client.ErrUnauthenticated) {
				t.Fatalf("DecryptField = %v (%v), want UNAUTHENTICATED", err, status.Code(err))
			}
		})
	}
}

// tamper flips one bit in the middle of the payload, keeping the text canonical.
func tamper(sealed string) string {
	i := len(sealed) - 20
	b := []byte(sealed)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestReturnsMasksAndTheIndexComputeIndexGives(t *testing.T) {
	c := dial(t, token)
	sealed, err := c.EncryptFields(ctx(t), envelope.SessionScope("sess_go_index"), map[string]any{"card_on_file": "5555 5555 5555 4444", "note": "x"}, "")
	if err != nil {
		t.Fatalf("EncryptFields: %v", err)
	}
	m := sealed.Masked["card_on_file"]
	if len(sealed.Masked) != 1 || m.GetText() != "Mastercard •••• 4444" || m.GetSpeakable() != "Mastercard ending in 4 4 4 4" {
		t.Fatalf("Masked = %v", sealed.Masked)
	}
	a, err := c.ComputeIndex(ctx(t), "", "card_on_file", "5555-5555-5555-4444", false)
	if err != nil {
		t.Fatalf("ComputeIndex: %v", err)
	}
	b, err := c.ComputeIndex(ctx(t), "", "card_on_file", "5555555555554444", true)
	if err != nil || len(a) != 1 || len(b) != 1 || a[0] != b[0] || !strings.HasPrefix(a[0], "fx1.default.") {
		t.Fatalf("ComputeIndex = %v, %v (%v)", a, b, err)
	}
	_, err = c.ComputeIndex(ctx(t), "", "card_on_file", "5555555555554445", false)
	var fe *client.Error
	if !errors.As(err, &fe) || fe.Code != "field_format_invalid" || strings.Contains(fe.Message, "5555") {
		t.Fatalf("a Luhn failure gave %v", err)
	}
}
