package envelope

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{1}, KeyBytes)
	sealed, err := Seal(key, "row-1", []byte("the secret"))
	if err != nil {
		t.Fatal(err)
	}
	if !Is(sealed) || bytes.Contains(sealed, []byte("the secret")) {
		t.Fatalf("sealed = %q, want an envelope without the plaintext", sealed)
	}
	if got, err := Open(key, "row-1", sealed); err != nil || string(got) != "the secret" {
		t.Errorf("Open = %q, %v; want the plaintext", got, err)
	}
	again, _ := Seal(key, "row-1", []byte("the secret"))
	if bytes.Equal(again, sealed) {
		t.Error("two seals of one plaintext are equal: the nonce is not fresh")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, tc := range map[string]struct {
		key     []byte
		context string
		sealed  []byte
		want    error
	}{
		"another row":     {key, "row-2", sealed, ErrOpen},
		"another key":     {bytes.Repeat([]byte{2}, KeyBytes), "row-1", sealed, ErrOpen},
		"altered":         {key, "row-1", tampered, ErrOpen},
		"truncated":       {key, "row-1", sealed[:len(V1)+4], ErrOpen},
		"a newer version": {key, "row-1", []byte("gatehouse-aes256gcm-v9:xxxx"), ErrVersion},
	} {
		if _, err := Open(tc.key, tc.context, tc.sealed); !errors.Is(err, tc.want) {
			t.Errorf("%s: Open = %v, want %v", name, err, tc.want)
		}
	}
	if _, err := Seal([]byte("short"), "row-1", nil); err == nil {
		t.Error("Seal with a 5-byte key succeeded")
	}
	if Is([]byte{0x30, 0x82}) {
		t.Error("a DER key reads as an envelope")
	}
}
