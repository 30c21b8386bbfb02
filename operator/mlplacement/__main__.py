from mlplacement.cli import main

main()
