// Package blindindex computes Fieldseal's blind indexes (docs/security.md, "Blind indexes") offline, for
// teams that hold the key: Index(key, keyring, version, field, Normalize(format, value)) gives the same
// `fx1.<keyring>.<version>.<base64url>` text as the server's EncryptFields and ComputeIndex. The shared
// vectors in test/vectors/indexes.json are the contract, with the TypeScript and Python code.
//
// Normalize rewrites a value into its normal form only: unlike the server, it does not check that a card
// number passes Luhn or that an address is well formed. Give it values the server would accept.
package blindindex

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// IndexBytes is how many bytes of HMAC-SHA256 an index keeps.
const IndexBytes = 16

const infoLabel = "fieldseal index v1"

var keyringName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// jsSpace is JavaScript's String.prototype.trim set (WhiteSpace and LineTerminator), which the server
// uses; Go's unicode.IsSpace differs (it keeps U+FEFF and strips U+0085).
const jsSpace = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" +
	"\u2028\u2029\u202f\u205f\u3000\ufeff"

// IndexKey is the index key of field under one key version of keyring: HKDF-SHA256 (RFC 5869) with no salt
// and info "fieldseal index v1" NUL keyring NUL field, 32 bytes.
func IndexKey(key []byte, keyring, field string) ([]byte, error) {
	if len(key) != 32 {
		return nil, errors.New("blindindex: key must be 32 bytes")
	}
	// The server's rules (src/engine/names.ts): a keyring name has no "." (the index text's separator) and no
	// NUL, a field name no NUL (the info's separator) and at most 256 bytes of UTF-8.
	if !keyringName.MatchString(keyring) {
		return nil, errors.New("blindindex: keyring name must be 1-63 characters a-z, 0-9, _ or -, " +
			"starting with a letter or digit")
	}
	if field == "" || len(field) > 256 || strings.ContainsRune(field, 0) || !utf8.ValidString(field) {
		return nil, errors.New("blindindex: field name must be 1 to 256 bytes of UTF-8 without NUL")
	}
	info := infoLabel + "\x00" + keyring + "\x00" + field
	return hkdf.Key(sha256.New, key, nil, info, 32)
}

// Index is the index text of an already normalised value under one key version of keyring.
func Index(key []byte, keyring string, version uint32, field, normalized string) (string, error) {
	k, err := IndexKey(key, keyring, field)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(normalized))
	sum := mac.Sum(nil)[:IndexBytes]
	return "fx1." + keyring + "." + strconv.FormatUint(uint64(version), 10) + "." +
		base64.RawURLEncoding.EncodeToString(sum), nil
}

// Normalize gives the normal form of value for a field of format ("" for a field without one, as
// "generic").
func Normalize(format, value string) (string, error) {
	switch format {
	case "card":
		return strings.NewReplacer(" ", "", "-", "").Replace(strings.Trim(value, jsSpace)), nil
	case "phone":
		compact := strings.NewReplacer(" ", "", "(", "", ")", "", ".", "", "-", "", "/", "").
			Replace(strings.Trim(value, jsSpace))
		return strings.TrimPrefix(compact, "+"), nil
	case "national_id":
		return strings.Map(func(r rune) rune {
			switch {
			case r == '-' || r == '.' || r == '/' || strings.ContainsRune(jsSpace, r):
				return -1
			case r >= 'a' && r <= 'z':
				return r - ('a' - 'A')
			}
			return r
		}, norm.NFKC.String(value)), nil
	case "email":
		return strings.Map(func(r rune) rune {
			if r >= 'A' && r <= 'Z' {
				return r + ('a' - 'A')
			}
			return r
		}, strings.Trim(value, jsSpace)), nil
	case "", "generic":
		return strings.Trim(norm.NFC.String(value), jsSpace), nil
	}
	return "", fmt.Errorf("blindindex: unknown format %q", format)
}
