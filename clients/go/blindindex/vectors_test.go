package blindindex_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldseal/fieldseal/clients/go/blindindex"
)

// The shared blind index vectors: Go computes what the server computes. Read in place, never copied.
var vectorsFile = filepath.Join("..", "..", "..", "test", "vectors", "indexes.json")

type vectors struct {
	Keys  map[string]map[string]string `json:"keys"`
	Cases []struct {
		Name        string  `json:"name"`
		Keyring     string  `json:"keyring"`
		Version     uint32  `json:"version"`
		Field       string  `json:"field"`
		Format      *string `json:"format"`
		Input       string  `json:"input"`
		Normalized  string  `json:"normalized"`
		IndexKeyHex string  `json:"index_key_hex"`
		Index       string  `json:"index"`
	} `json:"cases"`
}

func load(t *testing.T) vectors {
	t.Helper()
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) < 10 {
		t.Fatalf("only %d cases", len(v.Cases))
	}
	return v
}

func TestVectors(t *testing.T) {
	v := load(t)
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			key, err := base64.StdEncoding.DecodeString(v.Keys[c.Keyring][strconv.FormatUint(uint64(c.Version), 10)])
			if err != nil || len(key) != 32 {
				t.Fatalf("no test key %s v%d", c.Keyring, c.Version)
			}
			format := ""
			if c.Format != nil {
				format = *c.Format
			}
			normalized, err := blindindex.Normalize(format, c.Input)
			if err != nil || normalized != c.Normalized {
				t.Fatalf("Normalize = %q, %v; want %q", normalized, err, c.Normalized)
			}
			k, err := blindindex.IndexKey(key, c.Keyring, c.Field)
			if err != nil || hex.EncodeToString(k) != c.IndexKeyHex {
				t.Fatalf("IndexKey = %x, %v; want %s", k, err, c.IndexKeyHex)
			}
			index, err := blindindex.Index(key, c.Keyring, c.Version, c.Field, c.Normalized)
			if err != nil || index != c.Index {
				t.Fatalf("Index = %q, %v; want %q", index, err, c.Index)
			}
		})
	}
}

func TestRefusesAFieldThatCouldMakeTheInfoAmbiguous(t *testing.T) {
	if _, err := blindindex.IndexKey(make([]byte, 32), "default", "a\x00b"); err == nil {
		t.Fatal("a field with NUL was accepted")
	}
}

func TestRefusesNamesTheServerRefuses(t *testing.T) {
	key := make([]byte, 32)
	for _, keyring := range []string{"", "de\x00fault", "a.b", "Default", "-x", strings.Repeat("k", 64)} {
		if _, err := blindindex.IndexKey(key, keyring, "email"); err == nil {
			t.Errorf("keyring %q was accepted", keyring)
		}
	}
	for _, field := range []string{"", strings.Repeat("\u00e9", 129), "a\xffb"} {
		if _, err := blindindex.IndexKey(key, "default", field); err == nil {
			t.Errorf("field %q was accepted", field)
		}
	}
	if _, err := blindindex.IndexKey(key, "default", strings.Repeat("f", 256)); err != nil {
		t.Errorf("a 256-byte field was refused: %v", err)
	}
}
