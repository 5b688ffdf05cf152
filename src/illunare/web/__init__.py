"""Hot web applications: serving apps whose code is swapped while they run."""
