"""The cloud deployment rehearsed on this machine: pieces shared by `make rehearse` and the tests."""
