"""Models come with this app's issue; the app is installed so migrations and routes have a home."""
