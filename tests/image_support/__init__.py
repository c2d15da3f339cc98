"""Helpers for the image tests (tests/integration/image): a private Docker engine, a local
stand-in for the Dockerfile's base image, and a real image registry on 127.0.0.1."""
