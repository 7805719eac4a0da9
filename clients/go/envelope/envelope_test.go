package envelope_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/fieldseal/fieldseal/clients/go/envelope"
)

func TestOpenerEdges(t *testing.T) {
	v, keys := loadVectors(t)
	card := v.Valid[0]
	scope, field := card.Scope.String(), card.Field

	t.Run("opens with a function as key lookup", func(t *testing.T) {
		lookup := envelope.KeyLookupFunc(func(keyring string, version uint32) ([]byte, error) {
			return keys.Key(keyring, version)
		})
		if got, err := envelope.Open(card.Envelope, lookup, scope, field); err != nil || got != card.Value {
			t.Fatalf("Open = %#v, %v", got, err)
		}
	})
	t.Run("a lookup returning no key means no such version", func(t *testing.T) {
		none := envelope.KeyLookupFunc(func(string, uint32) ([]byte, error) { return nil, nil })
		if _, err := envelope.Open(card.Envelope, none, scope, field); !errors.Is(err, envelope.ErrKeyVersionNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("refuses a key that is not 32 bytes", func(t *testing.T) {
		short := envelope.KeyLookupFunc(func(string, uint32) ([]byte, error) { return make([]byte, 16), nil })
		if _, err := envelope.Open(card.Envelope, short, scope, field); !errors.Is(err, envelope.ErrInvalidArgument) {
			t.Fatalf("err = %v", err)
		}
	})
	for _, bad := range []string{"sess_8f3a2c1d", "tenant:x", "session:", "session:a\x00b", "session:" + strings.Repeat("x", 257), "session:\xff"} {
		t.Run("refuses scope "+strings.ToValidUTF8(bad[:min(len(bad), 20)], "?"), func(t *testing.T) {
			if _, err := envelope.Open(card.Envelope, keys, bad, field); !errors.Is(err, envelope.ErrInvalidArgument) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	for _, bad := range []string{"", "a\x00b", strings.Repeat("f", 257)} {
		t.Run("refuses an invalid field name", func(t *testing.T) {
			if _, err := envelope.Open(card.Envelope, keys, scope, bad); !errors.Is(err, envelope.ErrInvalidArgument) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	for name, text := range map[string]string{
		"trailing newline":   card.Envelope + "\n",
		"newline in payload": card.Envelope[:30] + "\n" + card.Envelope[30:],
		"uppercase keyring":  strings.Replace(card.Envelope, "fs1.default", "fs1.Default", 1),
		"version too large":  strings.Replace(card.Envelope, ".1.", ".4294967296.", 1),
		"base64 not url":     card.Envelope[:len(card.Envelope)-1] + "+",
		"bad length":         card.Envelope + "x",
	} {
		t.Run("refuses non-canonical text: "+name, func(t *testing.T) {
			if _, err := envelope.Open(text, keys, scope, field); !errors.Is(err, envelope.ErrEnvelopeMalformed) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("refuses oversized text before decoding", func(t *testing.T) {
		text := "fs1.default.1." + strings.Repeat("A", envelope.MaxEnvelopeChars)
		if _, err := envelope.Open(text, keys, scope, field); !errors.Is(err, envelope.ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a user scope is not a session scope", func(t *testing.T) {
		if _, err := envelope.Open(card.Envelope, keys, envelope.UserScope(card.Scope.ID), field); !errors.Is(err, envelope.ErrEnvelopeTampered) {
			t.Fatalf("err = %v", err)
		}
	})
}
