package envelope_test

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// docs/envelope.md's Go example, copied exactly between the markers below (TestDocExampleIsThisCode
// checks), and run against every shared test vector: readers copy it, so it must be as strict as the spec.

// BEGIN docs/envelope.md
var (
	keyringName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	versionText = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)
	payloadText = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// OpenFS1 opens an fs1 envelope sealed for scope ("session:<id>" or "user:<id>") and field.
func OpenFS1(text string, key func(keyring string, version uint32) ([]byte, error), scope, field string) (any, error) {
	p := strings.Split(text, ".")
	if len(text) > 90000 || len(p) != 4 || p[0] != "fs1" || !keyringName.MatchString(p[1]) || !versionText.MatchString(p[2]) {
		return nil, errors.New("malformed envelope")
	}
	v, err := strconv.ParseUint(p[2], 10, 32)
	if err != nil {
		return nil, errors.New("malformed envelope")
	}
	// The alphabet check is needed: Go's decoders skip CR and LF, even in Strict mode.
	// Strict refuses non-zero unused bits in the last character.
	if !payloadText.MatchString(p[3]) {
		return nil, errors.New("malformed payload")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(p[3])
	if err != nil || len(raw) < 29 {
		return nil, errors.New("malformed payload")
	}
	k, err := key(p[1], uint32(v))
	if err != nil {
		return nil, err
	}
	if len(k) != 32 {
		return nil, errors.New("key must be 32 bytes")
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	aad := []byte("fs1\x00" + p[1] + "\x00" + p[2] + "\x00" + scope + "\x00" + field)
	pt, err := gcm.Open(nil, raw[:12], raw[12:], aad)
	if err != nil {
		return nil, errors.New("tampered or moved")
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD; refuse it instead.
	if !utf8.Valid(pt[1:]) {
		return nil, errors.New("malformed plaintext")
	}
	switch pt[0] {
	case 's':
		return string(pt[1:]), nil
	case 'j':
		var out any
		if err := json.Unmarshal(pt[1:], &out); err != nil {
			return nil, errors.New("malformed plaintext")
		}
		return out, nil
	}
	return nil, errors.New("malformed plaintext")
}

// END docs/envelope.md

var docFile = filepath.Join("..", "..", "..", "docs", "envelope.md")

func TestDocExampleIsThisCode(t *testing.T) {
	doc, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) != 1 {
		t.Fatalf("docs/envelope.md holds %d Go examples, want 1", len(blocks))
	}
	self, err := os.ReadFile("doc_example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	copied := regexp.MustCompile("(?s)// BEGIN docs/envelope.md\n(.*?)\n// END docs/envelope.md").FindSubmatch(self)
	if copied == nil || string(copied[1]) != string(blocks[0][1]) {
		t.Fatal("the Go example in docs/envelope.md and its copy in doc_example_test.go differ")
	}
}

func TestDocExampleOpensValidVectors(t *testing.T) {
	v, keys := loadVectors(t)
	lookup := func(keyring string, version uint32) ([]byte, error) { return keys.Key(keyring, version) }
	for _, c := range v.Valid {
		t.Run(c.Name, func(t *testing.T) {
			got, err := OpenFS1(c.Envelope, lookup, c.Scope.String(), c.Field)
			if err != nil {
				t.Fatalf("OpenFS1: %v", err)
			}
			if !reflect.DeepEqual(got, c.Value) {
				t.Fatalf("OpenFS1 = %#v, want %#v", got, c.Value)
			}
		})
	}
}

func TestDocExampleRefusesInvalidVectors(t *testing.T) {
	v, keys := loadVectors(t)
	lookup := func(keyring string, version uint32) ([]byte, error) { return keys.Key(keyring, version) }
	for _, c := range v.Invalid {
		t.Run(c.Name, func(t *testing.T) {
			if got, err := OpenFS1(c.Envelope, lookup, c.Scope.String(), c.Field); err == nil {
				t.Fatalf("OpenFS1 = %#v, want an error (%s)", got, c.Error)
			}
		})
	}
}
