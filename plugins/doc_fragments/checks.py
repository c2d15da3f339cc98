# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations


class ModuleDocFragment:
    """Attributes of the modules that only look (checks and waits): each says its own check mode."""

    DOCUMENTATION = r"""
attributes:
  diff_mode:
    support: none
    details:
      - Nothing is changed, so there is nothing to diff.
  platform:
    platforms: posix
"""
