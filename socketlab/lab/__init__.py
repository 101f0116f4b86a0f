"""The lab: its settings (config), where its files are (assets), its images, the compose CLI,
the Docker client, commands in its hosts (process), and Lab itself (lab). The only package that
talks to Docker; everything else asks a Lab."""
