"""Training jobs: submit, list, cancel; and the claim, lease and finish rules workers follow."""
