package sandbox

// DecodePolicy exposes the launcher's parser to the fuzz test.
var DecodePolicy = decodePolicy
