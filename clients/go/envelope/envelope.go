// Package envelope opens Fieldseal's fs1 envelope (docs/envelope.md) offline, for teams that hold the key.
//
// No network and no files: give Open the sealed text, a way to find the key, and the scope and field the
// value was sealed for (OpenScoped for scope-keyed fs1s values, with the scope's data key). The test vectors in
// test/vectors/envelopes.json and test/vectors/scoped.json are the contract this package is
// checked against, together with the TypeScript and Python openers.
package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	formatTag  = "fs1"
	nonceBytes = 12
	tagBytes   = 16
	keyBytes   = 32
	// MaxEnvelopeChars is the longest envelope text accepted, checked before any decoding work.
	MaxEnvelopeChars = 90_000
	maxNameBytes     = 256
	typeString       = 's' // the rest is the string's UTF-8
	typeJSON         = 'j' // the rest is UTF-8 JSON text
)

var (
	keyringName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	versionText = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)
	base64URL   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// KeyLookup finds the 32-byte key of a keyring version. It returns an error wrapping ErrKeyringNotFound
// or ErrKeyVersionNotFound when it has no such key.
type KeyLookup interface {
	Key(keyring string, version uint32) ([]byte, error)
}

// KeyLookupFunc adapts a function to KeyLookup.
type KeyLookupFunc func(keyring string, version uint32) ([]byte, error)

// Key calls f.
func (f KeyLookupFunc) Key(keyring string, version uint32) ([]byte, error) {
	return f(keyring, version)
}

// StaticKeys is a KeyLookup over keys held in memory: keyring name to version to key.
type StaticKeys map[string]map[uint32][]byte

// Key returns the key of keyring at version.
func (s StaticKeys) Key(keyring string, version uint32) ([]byte, error) {
	versions, ok := s[keyring]
	if !ok {
		return nil, fail(ErrKeyringNotFound, fmt.Sprintf("no key is known for keyring %q", keyring))
	}
	key, ok := versions[version]
	if !ok {
		return nil, fail(ErrKeyVersionNotFound, fmt.Sprintf("keyring %q has no key version %d", keyring, version))
	}
	return key, nil
}

// SessionScope is the scope of a value bound to a Cognigy.AI session: "session:<id>".
func SessionScope(sessionID string) string { return "session:" + sessionID }

// UserScope is the scope of a value bound to a user or profile: "user:<id>".
func UserScope(userID string) string { return "user:" + userID }

// Envelope is a parsed fs1 envelope: which key opens it, and its raw parts.
type Envelope struct {
	Keyring string
	Version uint32
	Nonce   []byte
	// Sealed is the ciphertext followed by the 16-byte tag.
	Sealed []byte
}

// Parse parses envelope text strictly; anything but the canonical form fails with ErrEnvelopeMalformed.
func Parse(text string) (*Envelope, error) {
	if len(text) > MaxEnvelopeChars {
		return nil, fail(ErrTooLarge, fmt.Sprintf("sealed value is longer than %d characters", MaxEnvelopeChars))
	}
	parts := strings.Split(text, ".")
	if len(parts) != 4 || parts[0] != formatTag {
		return nil, malformed("expected four dot-separated parts starting with 'fs1'")
	}
	if !keyringName.MatchString(parts[1]) {
		return nil, malformed("keyring name is not valid")
	}
	if !versionText.MatchString(parts[2]) {
		return nil, malformed("key version is not a positive integer")
	}
	version, err := strconv.ParseUint(parts[2], 10, 32)
	if err != nil {
		return nil, malformed("key version is not a positive integer")
	}
	nonce, sealed, err := decodePayload(parts[3], malformed)
	if err != nil {
		return nil, err
	}
	return &Envelope{Keyring: parts[1], Version: uint32(version), Nonce: nonce, Sealed: sealed}, nil
}

// decodePayload splits an envelope's canonical base64url payload into its nonce and its ciphertext with tag;
// anything else fails with the format's own malformed error.
func decodePayload(text string, malformed func(why string) error) (nonce, sealed []byte, err error) {
	// The alphabet check matters: Go's decoder skips CR and LF, which must not pass as canonical text.
	if !base64URL.MatchString(text) {
		return nil, nil, malformed("payload is not base64url")
	}
	// Strict rejects stray trailing bits, so every other spelling of the same bytes fails here.
	payload, err := base64.RawURLEncoding.Strict().DecodeString(text)
	if err != nil {
		return nil, nil, malformed("payload is not canonical base64url")
	}
	if len(payload) < nonceBytes+1+tagBytes {
		return nil, nil, malformed("payload is too short")
	}
	return payload[:nonceBytes], payload[nonceBytes:], nil
}

// AAD builds the associated data: "fs1" NUL keyring NUL version NUL scope NUL field, as UTF-8.
// No part may contain NUL: that is what keeps two different contexts from producing the same bytes.
func AAD(keyring string, version uint32, scope, field string) ([]byte, error) {
	if !keyringName.MatchString(keyring) {
		return nil, fail(ErrInvalidArgument, "keyring name is not valid")
	}
	kind, id, ok := strings.Cut(scope, ":")
	if !ok || (kind != "session" && kind != "user") {
		return nil, fail(ErrInvalidArgument, "scope must be 'session:<sessionId>' or 'user:<userId>'")
	}
	if err := checkAADPart(kind+" id", id); err != nil {
		return nil, err
	}
	if err := checkAADPart("field name", field); err != nil {
		return nil, err
	}
	return []byte(formatTag + "\x00" + keyring + "\x00" + strconv.FormatUint(uint64(version), 10) + "\x00" + scope + "\x00" + field), nil
}

// Open opens an fs1 envelope sealed for scope and field and returns the value as the JSON type it was
// sealed as: string, float64, bool, nil, []any or map[string]any (as encoding/json decodes into any).
//
// scope is "session:<sessionId>" or "user:<userId>" (see SessionScope and UserScope). Errors wrap one of
// the sentinels: ErrEnvelopeMalformed, ErrEnvelopeTampered (altered, or moved to another field, scope or
// version), ErrKeyringNotFound, ErrKeyVersionNotFound, ErrInvalidArgument or ErrTooLarge.
func Open(text string, keys KeyLookup, scope, field string) (any, error) {
	env, err := Parse(text)
	if err != nil {
		return nil, err
	}
	key, err := keys.Key(env.Keyring, env.Version)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fail(ErrKeyVersionNotFound, fmt.Sprintf("keyring %q has no key version %d", env.Keyring, env.Version))
	}
	aad, err := AAD(env.Keyring, env.Version, scope, field)
	if err != nil {
		return nil, err
	}
	plaintext, err := aesGCMOpen(key, env.Nonce, env.Sealed, aad)
	if err != nil {
		return nil, err
	}
	defer clear(plaintext)
	return decodeValue(plaintext)
}

func aesGCMOpen(key, nonce, sealed, aad []byte) ([]byte, error) {
	// aes.NewCipher also takes 16- and 24-byte keys; anything but 32 bytes is a wrong key, never one to accept.
	if len(key) != keyBytes {
		return nil, fail(ErrInvalidArgument, "key must be 32 bytes (AES-256)")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fail(ErrInvalidArgument, "key must be 32 bytes (AES-256)")
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plaintext, err := gcm.Open(nil, nonce, sealed, aad)
	if err != nil {
		return nil, fail(ErrEnvelopeTampered, "sealed value does not authenticate: it was altered, or belongs to another field, scope or key version")
	}
	return plaintext, nil
}

func decodeValue(plaintext []byte) (any, error) {
	if len(plaintext) > 0 && utf8.Valid(plaintext[1:]) {
		switch plaintext[0] {
		case typeString:
			return string(plaintext[1:]), nil
		case typeJSON:
			var value any
			if err := json.Unmarshal(plaintext[1:], &value); err == nil {
				return value, nil
			}
		}
	}
	// Only reachable with a key that authenticated a value Fieldseal did not write.
	return nil, fail(ErrEnvelopeMalformed, "sealed value holds plaintext of an unknown type")
}

func checkAADPart(what, text string) error {
	switch {
	case text == "":
		return fail(ErrInvalidArgument, what+" is empty")
	case !utf8.ValidString(text):
		return fail(ErrInvalidArgument, what+" is not valid UTF-8")
	case strings.IndexByte(text, 0) >= 0:
		return fail(ErrInvalidArgument, what+" contains a NUL character")
	case len(text) > maxNameBytes:
		return fail(ErrInvalidArgument, fmt.Sprintf("%s is longer than %d bytes", what, maxNameBytes))
	}
	return nil
}

func malformed(why string) error {
	return fail(ErrEnvelopeMalformed, "sealed value is not a valid fs1 envelope: "+why)
}
