"""The semantic-boundary nodes (BoundaryDiffusion, spec section 9): collect, fit, load, edit."""
