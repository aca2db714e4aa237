package jsondepth

import "testing"

func TestOf(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{``, 0},
		{`"text"`, 0},
		{`{}`, 1},
		{`{"a":[1,{"b":[]}]}`, 4},
		{`["[[[{{{", "\"[["]`, 1}, // brackets inside strings, escaped quotes
		{`["\\", [[]]]`, 3},       // an escaped backslash ends the escape
		{`[] [[]]`, 2},            // deepest, not last
		{`]]]]{`, 0},              // not valid JSON, which the decoder refuses after this count
	} {
		if got := Of([]byte(c.in)); got != c.want {
			t.Errorf("Of(%s) = %d, want %d", c.in, got, c.want)
		}
	}
}
