"""beitlab example project: a custom mask generator and a custom target, outside the package."""
