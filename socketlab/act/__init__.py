"""What a user does in a running lab: run programs in its hosts (programs), impair links (shaping)."""
