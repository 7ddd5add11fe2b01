package policies

// StepUpEntry is one step-up proof carried in an access token: it counts
// only for the session SID names, until EXP, and max_age is measured from
// IAT (Unix seconds).
type StepUpEntry struct {
	SID string
	ACR string
	AMR []string
	IAT int64
	EXP int64
}
