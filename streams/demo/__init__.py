"""`banwatch up --demo`: a scripted scenario fed to the running service in real time."""
