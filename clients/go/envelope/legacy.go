package envelope

import (
	"encoding/base64"
	"encoding/json"
	"regexp"
	"unicode/utf8"
)

var base64Std = regexp.MustCompile(`^[A-Za-z0-9+/]+={0,2}$`)

// LegacyBlob is a value in the tutorial's format: base64 of JSON {nonce, ciphertext, key_version,
// encrypted_at, original_field}, AES-256-GCM with no associated data.
type LegacyBlob struct {
	// KeyVersionLabel is the tutorial secret's `version` label the blob names.
	KeyVersionLabel string
	OriginalField   string
	Nonce           []byte
	// Sealed is the ciphertext followed by the 16-byte tag.
	Sealed []byte
}

// ParseLegacyBlob parses a tutorial blob; anything else fails with ErrEnvelopeMalformed.
func ParseLegacyBlob(text string) (*LegacyBlob, error) {
	if !base64Std.MatchString(text) {
		return nil, legacyMalformed()
	}
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil || !utf8.Valid(raw) {
		return nil, legacyMalformed()
	}
	var blob struct {
		Nonce         *string          `json:"nonce"`
		Ciphertext    *string          `json:"ciphertext"`
		KeyVersion    *json.RawMessage `json:"key_version"`
		OriginalField *string          `json:"original_field"`
	}
	if err := json.Unmarshal(raw, &blob); err != nil || blob.Nonce == nil || blob.Ciphertext == nil ||
		blob.OriginalField == nil || blob.KeyVersion == nil {
		return nil, legacyMalformed()
	}
	label, ok := legacyLabel(*blob.KeyVersion)
	if !ok || !base64Std.MatchString(*blob.Nonce) || !base64Std.MatchString(*blob.Ciphertext) {
		return nil, legacyMalformed()
	}
	nonce, err1 := base64.StdEncoding.DecodeString(*blob.Nonce)
	sealed, err2 := base64.StdEncoding.DecodeString(*blob.Ciphertext)
	if err1 != nil || err2 != nil || len(nonce) != nonceBytes || len(sealed) < tagBytes {
		return nil, legacyMalformed()
	}
	return &LegacyBlob{KeyVersionLabel: label, OriginalField: *blob.OriginalField, Nonce: nonce, Sealed: sealed}, nil
}

// OpenLegacyBlob opens a tutorial blob for field with the raw 32-byte key of the secret version it names.
// The tutorial bound nothing into the ciphertext, so the field it names is checked here; nothing can tell
// a blob copied to another session. Rewrap such values into fs1 (the RewrapFields RPC).
func OpenLegacyBlob(text string, key []byte, field string) (string, error) {
	blob, err := ParseLegacyBlob(text)
	if err != nil {
		return "", err
	}
	if blob.OriginalField != field {
		return "", fail(ErrEnvelopeTampered, "legacy sealed value belongs to another field")
	}
	plaintext, err := aesGCMOpen(key, blob.Nonce, blob.Sealed, nil)
	if err != nil {
		return "", err
	}
	defer clear(plaintext)
	if !utf8.Valid(plaintext) {
		return "", fail(ErrEnvelopeMalformed, "legacy sealed value does not hold UTF-8 text")
	}
	return string(plaintext), nil
}

// legacyLabel reads key_version, a string or a number in the tutorial's secrets.
func legacyLabel(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}

func legacyMalformed() error {
	return fail(ErrEnvelopeMalformed, "sealed value is neither an fs1 envelope nor a legacy tutorial blob")
}
