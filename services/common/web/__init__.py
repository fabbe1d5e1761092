"""What every service's Flask app shares: app.py (the factory), identity.py, defences.py, health.py."""
