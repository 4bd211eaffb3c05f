from trident.cli import app

app()
