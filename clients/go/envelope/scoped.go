package envelope

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
)

const scopedFormatTag = "fs1s"

// DataKeyLookup finds the 32-byte data key of a scope of an erasable keyring, by generation. It returns an
// error wrapping ErrScopeKeyNotFound (or a nil key) when it has none: a forgotten scope has none.
type DataKeyLookup func(keyring, scope string, generation uint32) ([]byte, error)

// ScopedEnvelope is a parsed fs1s (scope-keyed) envelope.
type ScopedEnvelope struct {
	Keyring    string
	Version    uint32
	Generation uint32
	Nonce      []byte
	// Sealed is the ciphertext followed by the 16-byte tag.
	Sealed []byte
}

// ParseScoped parses "fs1s.<keyring>.<version>.<generation>.<payload>" strictly; anything but the
// canonical form fails with ErrEnvelopeMalformed.
func ParseScoped(text string) (*ScopedEnvelope, error) {
	if len(text) > MaxEnvelopeChars {
		return nil, fail(ErrTooLarge, fmt.Sprintf("sealed value is longer than %d characters", MaxEnvelopeChars))
	}
	parts := strings.Split(text, ".")
	if len(parts) != 5 || parts[0] != scopedFormatTag {
		return nil, scopedMalformed("expected five dot-separated parts starting with 'fs1s'")
	}
	if !keyringName.MatchString(parts[1]) {
		return nil, scopedMalformed("keyring name is not valid")
	}
	numbers := [2]uint32{}
	for i, what := range []string{"key version", "generation"} {
		n, err := strconv.ParseUint(parts[2+i], 10, 32)
		if !versionText.MatchString(parts[2+i]) || err != nil {
			return nil, scopedMalformed(what + " is not a positive integer")
		}
		numbers[i] = uint32(n)
	}
	nonce, sealed, err := decodePayload(parts[4], scopedMalformed)
	if err != nil {
		return nil, err
	}
	return &ScopedEnvelope{
		Keyring: parts[1], Version: numbers[0], Generation: numbers[1], Nonce: nonce, Sealed: sealed,
	}, nil
}

// ScopedAAD builds "fs1s" NUL keyring NUL version NUL generation NUL scope NUL field, as UTF-8.
func ScopedAAD(keyring string, version, generation uint32, scope, field string) ([]byte, error) {
	if _, err := AAD(keyring, version, scope, field); err != nil { // the same checks of every part
		return nil, err
	}
	return []byte(scopedFormatTag + "\x00" + keyring + "\x00" + strconv.FormatUint(uint64(version), 10) + "\x00" +
		strconv.FormatUint(uint64(generation), 10) + "\x00" + scope + "\x00" + field), nil
}

// DeriveValueKey is the key a scope-keyed value is sealed under: HMAC-SHA256(dataKey, "fs1s" NUL || versionKey).
func DeriveValueKey(dataKey, versionKey []byte) ([]byte, error) {
	if len(dataKey) != keyBytes || len(versionKey) != keyBytes {
		return nil, fail(ErrInvalidArgument, "data key and key version must be 32 bytes each")
	}
	mac := hmac.New(sha256.New, dataKey)
	mac.Write([]byte("fs1s\x00"))
	mac.Write(versionKey)
	return mac.Sum(nil), nil
}

// UnwrapDataKey unwraps a data key as the scope key database holds it: nonce || AES-256-GCM(data key) || tag
// under keyring version `version`, AAD "fs1s-key" NUL keyring NUL version NUL scope NUL generation.
func UnwrapDataKey(versionKey []byte, keyring string, version uint32, scope string, generation uint32, wrapped []byte) ([]byte, error) {
	if len(wrapped) != nonceBytes+keyBytes+tagBytes {
		return nil, fail(ErrInvalidArgument, "a wrapped data key is 60 bytes")
	}
	aad := []byte("fs1s-key\x00" + keyring + "\x00" + strconv.FormatUint(uint64(version), 10) + "\x00" + scope + "\x00" +
		strconv.FormatUint(uint64(generation), 10))
	return aesGCMOpen(versionKey, wrapped[:nonceBytes], wrapped[nonceBytes:], aad)
}

// OpenScoped opens an fs1s envelope sealed for scope and field. It needs both the keyring version's key
// (keys) and the scope's data key of the envelope's generation (dataKeys): a forgotten scope has no data
// key, so none of its values open anywhere. Errors are Open's, and ErrScopeKeyNotFound.
func OpenScoped(text string, keys KeyLookup, dataKeys DataKeyLookup, scope, field string) (any, error) {
	env, err := ParseScoped(text)
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
	aad, err := ScopedAAD(env.Keyring, env.Version, env.Generation, scope, field)
	if err != nil {
		return nil, err
	}
	dataKey, err := dataKeys(env.Keyring, scope, env.Generation)
	if err != nil {
		return nil, err
	}
	if dataKey == nil {
		return nil, fail(ErrScopeKeyNotFound, fmt.Sprintf("no data key of generation %d for this scope in keyring %q", env.Generation, env.Keyring))
	}
	valueKey, err := DeriveValueKey(dataKey, key)
	if err != nil {
		return nil, err
	}
	defer clear(valueKey)
	plaintext, err := aesGCMOpen(valueKey, env.Nonce, env.Sealed, aad)
	if err != nil {
		return nil, err
	}
	defer clear(plaintext)
	return decodeValue(plaintext)
}

func scopedMalformed(why string) error {
	return fail(ErrEnvelopeMalformed, "sealed value is not a valid fs1s envelope: "+why)
}
