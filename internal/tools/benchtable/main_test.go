package main

import "testing"

// TestRatioText: a ratio that two decimals would round onto its goal is
// shown with three, so that the figure and the verdict agree.
func TestRatioText(t *testing.T) {
	atLeast := row{goal: 0.8}
	atMost := row{goal: 1, lower: true}
	for _, c := range []struct {
		r     row
		ratio float64
		want  string
	}{
		{atLeast, 0.7974, "0.797"},
		{atLeast, 0.8031, "0.803"},
		{atLeast, 0.8, "0.80"},
		{atLeast, 0.8712, "0.87"},
		{atMost, 1.0049, "1.005"},
		{atMost, 1.96, "1.96"},
		{row{}, 4.3099, "4.31"},
	} {
		if got := ratioText(c.r, c.ratio); got != c.want {
			t.Errorf("ratioText(goal %v, %v) = %s, want %s", c.r.goal, c.ratio, got, c.want)
		}
		if c.r.goal == 0.8 && c.ratio < 0.8 && verdict(c.r, c.ratio) != "missed" {
			t.Errorf("verdict(%v) is not missed", c.ratio)
		}
	}
}
