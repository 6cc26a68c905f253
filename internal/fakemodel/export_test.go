package fakemodel

// RuleArguments exposes Rule.arguments to the external tests.
func RuleArguments(r Rule, prompt string) []byte { return r.arguments(prompt) }
