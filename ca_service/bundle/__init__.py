"""Trust anchors and the trust bundle for provisioning servers."""
