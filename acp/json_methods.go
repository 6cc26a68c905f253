// JSON methods of the wire types: declared members plus Extra (see extra.go).

package acp

// MarshalJSON writes the declared members and then those in Extra.
func (v Implementation) MarshalJSON() ([]byte, error) {
	type plain Implementation
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *Implementation) UnmarshalJSON(b []byte) error {
	type plain Implementation
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v FileSystemCapability) MarshalJSON() ([]byte, error) {
	type plain FileSystemCapability
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *FileSystemCapability) UnmarshalJSON(b []byte) error {
	type plain FileSystemCapability
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v ClientCapabilities) MarshalJSON() ([]byte, error) {
	type plain ClientCapabilities
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *ClientCapabilities) UnmarshalJSON(b []byte) error {
	type plain ClientCapabilities
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v InitializeRequest) MarshalJSON() ([]byte, error) {
	type plain InitializeRequest
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *InitializeRequest) UnmarshalJSON(b []byte) error {
	type plain InitializeRequest
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v PromptCapabilities) MarshalJSON() ([]byte, error) {
	type plain PromptCapabilities
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *PromptCapabilities) UnmarshalJSON(b []byte) error {
	type plain PromptCapabilities
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v McpCapabilities) MarshalJSON() ([]byte, error) {
	type plain McpCapabilities
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *McpCapabilities) UnmarshalJSON(b []byte) error {
	type plain McpCapabilities
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v AgentCapabilities) MarshalJSON() ([]byte, error) {
	type plain AgentCapabilities
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *AgentCapabilities) UnmarshalJSON(b []byte) error {
	type plain AgentCapabilities
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v AuthMethod) MarshalJSON() ([]byte, error) {
	type plain AuthMethod
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *AuthMethod) UnmarshalJSON(b []byte) error {
	type plain AuthMethod
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v InitializeResponse) MarshalJSON() ([]byte, error) {
	type plain InitializeResponse
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *InitializeResponse) UnmarshalJSON(b []byte) error {
	type plain InitializeResponse
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v AuthenticateRequest) MarshalJSON() ([]byte, error) {
	type plain AuthenticateRequest
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *AuthenticateRequest) UnmarshalJSON(b []byte) error {
	type plain AuthenticateRequest
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v AuthenticateResponse) MarshalJSON() ([]byte, error) {
	type plain AuthenticateResponse
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *AuthenticateResponse) UnmarshalJSON(b []byte) error {
	type plain AuthenticateResponse
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v NewSessionRequest) MarshalJSON() ([]byte, error) {
	type plain NewSessionRequest
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *NewSessionRequest) UnmarshalJSON(b []byte) error {
	type plain NewSessionRequest
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v SessionMode) MarshalJSON() ([]byte, error) {
	type plain SessionMode
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *SessionMode) UnmarshalJSON(b []byte) error {
	type plain SessionMode
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v SessionModeState) MarshalJSON() ([]byte, error) {
	type plain SessionModeState
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *SessionModeState) UnmarshalJSON(b []byte) error {
	type plain SessionModeState
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v ConfigSelectOption) MarshalJSON() ([]byte, error) {
	type plain ConfigSelectOption
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *ConfigSelectOption) UnmarshalJSON(b []byte) error {
	type plain ConfigSelectOption
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v ConfigOption) MarshalJSON() ([]byte, error) {
	type plain ConfigOption
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *ConfigOption) UnmarshalJSON(b []byte) error {
	type plain ConfigOption
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v NewSessionResponse) MarshalJSON() ([]byte, error) {
	type plain NewSessionResponse
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *NewSessionResponse) UnmarshalJSON(b []byte) error {
	type plain NewSessionResponse
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v LoadSessionRequest) MarshalJSON() ([]byte, error) {
	type plain LoadSessionRequest
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *LoadSessionRequest) UnmarshalJSON(b []byte) error {
	type plain LoadSessionRequest
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v LoadSessionResponse) MarshalJSON() ([]byte, error) {
	type plain LoadSessionResponse
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *LoadSessionResponse) UnmarshalJSON(b []byte) error {
	type plain LoadSessionResponse
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v PromptRequest) MarshalJSON() ([]byte, error) {
	type plain PromptRequest
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *PromptRequest) UnmarshalJSON(b []byte) error {
	type plain PromptRequest
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v PromptResponse) MarshalJSON() ([]byte, error) {
	type plain PromptResponse
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *PromptResponse) UnmarshalJSON(b []byte) error {
	type plain PromptResponse
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v CancelNotification) MarshalJSON() ([]byte, error) {
	type plain CancelNotification
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *CancelNotification) UnmarshalJSON(b []byte) error {
	type plain CancelNotification
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v SetSessionModeRequest) MarshalJSON() ([]byte, error) {
	type plain SetSessionModeRequest
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *SetSessionModeRequest) UnmarshalJSON(b []byte) error {
	type plain SetSessionModeRequest
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v SetSessionModeResponse) MarshalJSON() ([]byte, error) {
	type plain SetSessionModeResponse
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *SetSessionModeResponse) UnmarshalJSON(b []byte) error {
	type plain SetSessionModeResponse
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v SetSessionConfigOptionRequest) MarshalJSON() ([]byte, error) {
	type plain SetSessionConfigOptionRequest
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *SetSessionConfigOptionRequest) UnmarshalJSON(b []byte) error {
	type plain SetSessionConfigOptionRequest
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v SetSessionConfigOptionResponse) MarshalJSON() ([]byte, error) {
	type plain SetSessionConfigOptionResponse
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *SetSessionConfigOptionResponse) UnmarshalJSON(b []byte) error {
	type plain SetSessionConfigOptionResponse
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v ToolCallContent) MarshalJSON() ([]byte, error) {
	type plain ToolCallContent
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *ToolCallContent) UnmarshalJSON(b []byte) error {
	type plain ToolCallContent
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v ToolCallLocation) MarshalJSON() ([]byte, error) {
	type plain ToolCallLocation
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *ToolCallLocation) UnmarshalJSON(b []byte) error {
	type plain ToolCallLocation
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v ToolCall) MarshalJSON() ([]byte, error) {
	type plain ToolCall
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *ToolCall) UnmarshalJSON(b []byte) error {
	type plain ToolCall
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v PlanEntry) MarshalJSON() ([]byte, error) {
	type plain PlanEntry
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *PlanEntry) UnmarshalJSON(b []byte) error {
	type plain PlanEntry
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v AvailableCommand) MarshalJSON() ([]byte, error) {
	type plain AvailableCommand
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *AvailableCommand) UnmarshalJSON(b []byte) error {
	type plain AvailableCommand
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v PermissionOption) MarshalJSON() ([]byte, error) {
	type plain PermissionOption
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *PermissionOption) UnmarshalJSON(b []byte) error {
	type plain PermissionOption
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v RequestPermissionRequest) MarshalJSON() ([]byte, error) {
	type plain RequestPermissionRequest
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *RequestPermissionRequest) UnmarshalJSON(b []byte) error {
	type plain RequestPermissionRequest
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v RequestPermissionOutcome) MarshalJSON() ([]byte, error) {
	type plain RequestPermissionOutcome
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *RequestPermissionOutcome) UnmarshalJSON(b []byte) error {
	type plain RequestPermissionOutcome
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v RequestPermissionResponse) MarshalJSON() ([]byte, error) {
	type plain RequestPermissionResponse
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *RequestPermissionResponse) UnmarshalJSON(b []byte) error {
	type plain RequestPermissionResponse
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v ReadTextFileRequest) MarshalJSON() ([]byte, error) {
	type plain ReadTextFileRequest
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *ReadTextFileRequest) UnmarshalJSON(b []byte) error {
	type plain ReadTextFileRequest
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v ReadTextFileResponse) MarshalJSON() ([]byte, error) {
	type plain ReadTextFileResponse
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *ReadTextFileResponse) UnmarshalJSON(b []byte) error {
	type plain ReadTextFileResponse
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v WriteTextFileRequest) MarshalJSON() ([]byte, error) {
	type plain WriteTextFileRequest
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *WriteTextFileRequest) UnmarshalJSON(b []byte) error {
	type plain WriteTextFileRequest
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v WriteTextFileResponse) MarshalJSON() ([]byte, error) {
	type plain WriteTextFileResponse
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *WriteTextFileResponse) UnmarshalJSON(b []byte) error {
	type plain WriteTextFileResponse
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v ContentChunk) MarshalJSON() ([]byte, error) {
	type plain ContentChunk
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *ContentChunk) UnmarshalJSON(b []byte) error {
	type plain ContentChunk
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v Plan) MarshalJSON() ([]byte, error) {
	type plain Plan
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *Plan) UnmarshalJSON(b []byte) error {
	type plain Plan
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v AvailableCommandsUpdate) MarshalJSON() ([]byte, error) {
	type plain AvailableCommandsUpdate
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *AvailableCommandsUpdate) UnmarshalJSON(b []byte) error {
	type plain AvailableCommandsUpdate
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v CurrentModeUpdate) MarshalJSON() ([]byte, error) {
	type plain CurrentModeUpdate
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *CurrentModeUpdate) UnmarshalJSON(b []byte) error {
	type plain CurrentModeUpdate
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v ConfigOptionUpdate) MarshalJSON() ([]byte, error) {
	type plain ConfigOptionUpdate
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *ConfigOptionUpdate) UnmarshalJSON(b []byte) error {
	type plain ConfigOptionUpdate
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v SessionInfoUpdate) MarshalJSON() ([]byte, error) {
	type plain SessionInfoUpdate
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *SessionInfoUpdate) UnmarshalJSON(b []byte) error {
	type plain SessionInfoUpdate
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v UsageUpdate) MarshalJSON() ([]byte, error) {
	type plain UsageUpdate
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *UsageUpdate) UnmarshalJSON(b []byte) error {
	type plain UsageUpdate
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// MarshalJSON writes the declared members and then those in Extra.
func (v SessionNotification) MarshalJSON() ([]byte, error) {
	type plain SessionNotification
	return marshalObject(plain(v), v.Extra)
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *SessionNotification) UnmarshalJSON(b []byte) error {
	type plain SessionNotification
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}
