from privfed.cli.main import run

run()
