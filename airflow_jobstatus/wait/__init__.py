"""The wait machinery below the hooks: verdicts and retry rules (``rules``), the shared pause between
polls (``shared_sleep``) and the triggerer's collector setting (``gc``)."""
